// SPDX-License-Identifier: GPL-2.0
/*
 * gtp5g-tracer: loads the gtp5g BPF tracer and keeps it attached until
 * SIGINT/SIGTERM. Its programs print to the kernel's trace_pipe, which the
 * gtp5g-operator daemon tails.
 *
 * One BPF object per mode, loaded once with only the programs whose targets
 * exist (BTF pre-checks decide each program's autoload): a gtp5g build that
 * lacks one function (e.g. policePacket in older releases) must not cost the
 * other probes, and parsing kernel BTF once per probe made start-up slow.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include <sys/utsname.h>
#include <time.h>
#include <zlib.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "gtp5g_fentry.skel.h"
#include "gtp5g_netdev.skel.h"
#include "gtp5g_unload.skel.h"
#include "gtp5g_heartbeat.skel.h"
#include "gtp5g_dedup.h"
#include "gtp5g_heartbeat.h"
#include "wire.h"

#define PROG "gtp5g-tracer"
#include "cli.h"
#define GTP5G_BTF "/sys/kernel/btf/gtp5g"
/* The heartbeat (gtp5g_heartbeat.h), so that the daemon tells a dead tracer
 * from a quiet user plane. */
#define HEARTBEAT_S 5
#define HEARTBEAT_INSTANCE "gtp5g-operator"
#define GTP5G_SYSFS "/sys/module/gtp5g"
/* How often -v reports the event counts. */
#define STATS_PERIOD_S 10

/* MODE_FENTRY and MODE_NETDEV are also the two objects a probe belongs to;
 * MODE_FENTRY_RLS runs both: gtp5g's own uplink entry for GTP-U, the wire's
 * egress for RLS (which gtp5g never sees). */
enum mode { MODE_AUTO, MODE_FENTRY, MODE_NETDEV, MODE_FENTRY_RLS };

static const char *const mode_names[] = {
	[MODE_AUTO] = "auto", [MODE_FENTRY] = "fentry", [MODE_NETDEV] = "netdev",
	[MODE_FENTRY_RLS] = "fentry+rls",
};

static const char *mode_name(enum mode m)
{
	return mode_names[m];
}

/* The modes whose fentry probes follow gtp5g: attached while it is loaded,
 * released for its unload, attached again when it is back. */
static bool follows_gtp5g(enum mode m)
{
	return m == MODE_FENTRY || m == MODE_FENTRY_RLS;
}

/* Room for every program of both objects. */
#define MAX_PROBES 32

struct probe {
	enum mode mode;
	char name[64];	  /* as printed in trace_pipe messages / --list */
	char prog[64];	  /* BPF program name in the object */
	const char *func; /* kernel function or tracepoint (in name), for --only */
};

/* Filled from the objects themselves (collect_probes), so that a program
 * added to a .bpf.c needs no second list here. */
static struct probe probes[MAX_PROBES];
static size_t nprobes;

static bool verbose;

/* One probe per program of obj, named after its SEC(): "fentry/F",
 * "fexit/F", and "tp/T" for "tp_btf/T" (the prefix its lines print). */
static int add_probes(enum mode mode, struct bpf_object *obj)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj) {
		const char *sec = bpf_program__section_name(prog), *slash = strchr(sec, '/');
		struct probe *p = &probes[nprobes];

		if (!slash || nprobes == MAX_PROBES) {
			fprintf(stderr, PROG ": BPF program %s (SEC \"%s\"): %s\n",
				bpf_program__name(prog), sec,
				slash ? "more programs than MAX_PROBES" : "no target in its section name");
			return -EINVAL;
		}
		p->mode = mode;
		if (!strncmp(sec, "tp_btf/", 7))
			snprintf(p->name, sizeof(p->name), "tp%s", slash);
		else
			snprintf(p->name, sizeof(p->name), "%s", sec);
		snprintf(p->prog, sizeof(p->prog), "%s", bpf_program__name(prog));
		p->func = strchr(p->name, '/') + 1;
		nprobes++;
	}
	return 0;
}

/* Opening parses the embedded ELF only: nothing reaches the kernel. */
static int collect_probes(void)
{
	struct gtp5g_fentry *fentry = gtp5g_fentry__open();
	struct gtp5g_netdev *netdev = gtp5g_netdev__open();
	int err = fentry && netdev ? 0 : -errno;

	if (err)
		fprintf(stderr, PROG ": cannot open the embedded BPF objects: %s\n", strerror(-err));
	if (!err)
		err = add_probes(MODE_FENTRY, fentry->obj);
	if (!err)
		err = add_probes(MODE_NETDEV, netdev->obj);
	gtp5g_fentry__destroy(fentry);
	gtp5g_netdev__destroy(netdev);
	return err;
}

/* The first libbpf warning of the current attempt is the one that says what
 * went wrong; later ones repeat it at object level. */
static char first_warn[512];
static char verifier_last[256];

static void trim_copy(char *dst, size_t dstlen, const char *src, size_t n)
{
	while (n && (src[n - 1] == '\n' || src[n - 1] == ' '))
		n--;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[8192];
	va_list cp;

	va_copy(cp, ap);
	vsnprintf(buf, sizeof(buf), fmt, cp);
	va_end(cp);
	if (verbose)
		fputs(buf, stderr);
	if (level != LIBBPF_WARN)
		return 0;

	/* A verifier rejection arrives as one message holding the whole log;
	 * its last line is the verdict. */
	const char *b = strstr(buf, "-- BEGIN PROG LOAD LOG --");
	if (b) {
		const char *e = strstr(b, "-- END PROG LOAD LOG --");
		const char *start = strchr(b, '\n');
		if (start && e && e > start) {
			const char *end = e, *ls;
			while (end > start && end[-1] == '\n')
				end--;
			ls = end;
			while (ls > start + 1 && ls[-1] != '\n')
				ls--;
			trim_copy(verifier_last, sizeof(verifier_last), ls, end - ls);
		}
		return 0;
	}
	if (!first_warn[0])
		trim_copy(first_warn, sizeof(first_warn), buf, strlen(buf));
	return 0;
}

static void reset_warn(void)
{
	first_warn[0] = 0;
	verifier_last[0] = 0;
}

/* The kernel's own ENOTSUPP, which BPF trampolines return and libc has no
 * text for ("Unknown error 524"). */
#define ENOTSUPP_ 524

static const char *errno_text(int err)
{
	err = err < 0 ? -err : err;
	if (err == ENOTSUPP_)
		return "not supported by this kernel's BPF trampolines (ENOTSUPP: e.g. more than six "
		       "arguments before Linux 6.6, or a struct passed by value)";
	return strerror(err);
}

static void failure_reason(char *out, size_t len, const char *what, int err)
{
	int n = snprintf(out, len, "%s: %s", what, errno_text(err));
	if (first_warn[0] && n > 0 && (size_t)n < len)
		n += snprintf(out + n, len - n, " (%s)", first_warn);
	if (verifier_last[0] && n > 0 && (size_t)n < len)
		snprintf(out + n, len - n, " [verifier: %s]", verifier_last);
	if (err == -EPERM || err == EPERM || err == -EACCES || err == EACCES) {
		size_t l = strlen(out);
		/* Privileges were checked up front, so EPERM here is the kernel
		 * refusing this program type or target, not missing caps. */
		snprintf(out + l, len - l, " - refused by the kernel although privileged: this program type "
			 "or target is disabled here (lockdown/LSM policy, or function not traceable)");
	}
}

/* ---- privilege check ---- */

static bool cap_effective(int cap)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = {};

	if (syscall(SYS_capget, &hdr, data))
		return false;
	return data[cap / 32].effective & (1U << (cap % 32));
}

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static bool privileged(void)
{
	/* Root in a user namespace or with a reduced bounding set has euid 0 but
	 * not the capabilities, so ask the kernel rather than trust geteuid(). */
	if (cap_effective(CAP_SYS_ADMIN))
		return true;
	return cap_effective(CAP_BPF) && cap_effective(CAP_PERFMON);
}

/* ---- target checks: say why a probe cannot attach before libbpf fails
 * with a generic -ESRCH ---- */

static struct btf *vmlinux_btf;
static struct btf *gtp5g_btf;
static int gtp5g_btf_err;

static bool module_loaded(const char *name)
{
	char line[512];
	size_t n = strlen(name);
	FILE *f = fopen("/proc/modules", "r");
	bool found = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ' ') {
			found = true;
			break;
		}
	fclose(f);
	return found;
}

/* The running kernel's uname(), filled once at start. */
static struct utsname uts;

/* The running kernel as major * 1000 + minor (6.1.0-57-amd64: 6001). */
static int kernel_version(void)
{
	int major = 0, minor = 0;

	if (sscanf(uts.release, "%d.%d", &major, &minor) != 2)
		return 0;
	return major * 1000 + minor;
}

/* x86-64 BPF trampolines took at most six arguments until Linux 6.6
 * (where up to twelve came). The kernel loads such a program and refuses
 * only its attach, with ENOTSUPP: said here, in words, from the BTF. */
#define TRAMPOLINE_ARGS_OLD 6
#define TRAMPOLINE_MORE_ARGS_SINCE 6006

static bool args_fit(const struct btf *btf, int id, const char *func, char *why, size_t len)
{
	const struct btf_type *proto = btf__type_by_id(btf, btf__type_by_id(btf, id)->type);
	int nargs = proto ? btf_vlen(proto) : 0, version = kernel_version();

#if defined(__x86_64__)
	if (nargs > TRAMPOLINE_ARGS_OLD && version && version < TRAMPOLINE_MORE_ARGS_SINCE) {
		snprintf(why, len, "%s: needs Linux 6.6 for fentry on functions with %d arguments "
			 "(this kernel is %s; up to 6 before 6.6)", func, nargs, uts.release);
		return false;
	}
#else
	(void)nargs, (void)version, (void)func, (void)why, (void)len;
#endif
	return true;
}

static bool fentry_target_ok(const char *func, char *why, size_t len)
{
	int id;

	if (vmlinux_btf && (id = btf__find_by_name_kind(vmlinux_btf, func, BTF_KIND_FUNC)) > 0)
		return args_fit(vmlinux_btf, id, func, why, len); /* gtp5g built into the kernel */
	if (!gtp5g_btf) {
		if (module_loaded("gtp5g"))
			snprintf(why, len, "no BTF for module gtp5g: module is loaded but " GTP5G_BTF
				 " is missing (kernel without CONFIG_DEBUG_INFO_BTF_MODULES or module built without BTF)");
		else if (gtp5g_btf_err && gtp5g_btf_err != -ENOENT)
			snprintf(why, len, "no BTF for module gtp5g: cannot parse " GTP5G_BTF ": %s",
				 strerror(-gtp5g_btf_err));
		else
			snprintf(why, len, "no BTF for module gtp5g: " GTP5G_BTF
				 " does not exist (gtp5g module not loaded)");
		return false;
	}
	id = btf__find_by_name_kind(gtp5g_btf, func, BTF_KIND_FUNC);
	if (id <= 0) {
		snprintf(why, len, "missing symbol: module gtp5g has no function '%s' in its BTF "
			 "(not in this gtp5g version, or inlined)", func);
		return false;
	}
	return args_fit(gtp5g_btf, id, func, why, len);
}

static bool netdev_target_ok(const char *tp, char *why, size_t len)
{
	char name[128];

	if (!vmlinux_btf) {
		snprintf(why, len, "no kernel BTF (/sys/kernel/btf/vmlinux): tp_btf needs CONFIG_DEBUG_INFO_BTF");
		return false;
	}
	/* libbpf resolves tp_btf/X through the btf_trace_X typedef. */
	snprintf(name, sizeof(name), "btf_trace_%s", tp);
	if (btf__find_by_name_kind(vmlinux_btf, name, BTF_KIND_TYPEDEF) <= 0) {
		snprintf(why, len, "missing tracepoint: kernel BTF has no %s", name);
		return false;
	}
	return true;
}

/* ---- options ---- */

static bool selected(const struct probe *p, char *only)
{
	char buf[1024], *tok, *save = NULL;

	if (!only)
		return true;
	snprintf(buf, sizeof(buf), "%s", only);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (!strcmp(tok, p->func) || !strcmp(tok, p->name))
			return true;
	return false;
}

/* Reject --only names that match nothing in any mode: a typo must not turn
 * into a silently empty tracer. */
static int check_only(const char *only)
{
	char buf[1024], *tok, *save = NULL;
	int bad = 0;

	snprintf(buf, sizeof(buf), "%s", only);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool found = false;
		for (size_t i = 0; i < nprobes; i++)
			if (!strcmp(tok, probes[i].func) || !strcmp(tok, probes[i].name))
				found = true;
		if (!found) {
			fprintf(stderr, PROG ": --only: unknown probe or function '%s' (see --list)\n", tok);
			bad = 1;
		}
	}
	return bad;
}

/* The egress hook, where a packet's sender is the running thread. */
static bool egress(const struct probe *p)
{
	return p->mode == MODE_NETDEV && !strcmp(p->func, "net_dev_queue");
}

/* fentry's de-duplicated set: gtp5g's uplink entry (see needed()). */
static bool fentry_default(const struct probe *p)
{
	return !strcmp(p->name, "fentry/gtp5g_encap_recv");
}

static void list_probes(void)
{
	printf("mode fentry (gtp5g module functions; needs %s):\n", GTP5G_BTF);
	for (size_t i = 0; i < nprobes; i++)
		if (probes[i].mode == MODE_FENTRY)
			printf("  %-32s %s (%s)\n", probes[i].name, probes[i].func,
			       fentry_default(&probes[i]) ? "uplink entry" : "with --every-event or --only");
	printf("mode netdev (any kernel with BTF; GTP-U over UDP, IPv4/IPv6):\n");
	for (size_t i = 0; i < nprobes; i++)
		if (probes[i].mode == MODE_NETDEV)
			printf("  %-32s %s (%s)\n", probes[i].name, probes[i].func,
			       egress(&probes[i]) ? "egress" : "ingress, with --every-event only");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--mode auto|fentry|netdev|fentry+rls] [--only FUNC,...] [--port N]\n"
		"       [--rls-port N] [--refresh-ms MS] [--every-event] [--map-size N] [--ready-file PATH]\n"
		"       [--heartbeat-s S] [--instance NAME] [--list] [-v]\n"
		"       " PROG " --unload-gtp5g\n"
		"  --mode        auto (default): fentry+rls when " GTP5G_BTF " exists, else netdev\n"
		"                (fentry+rls: gtp5g's uplink entry for GTP-U, netdev egress for RLS)\n"
		"  --only        attach only these probes (function/tracepoint or probe name)\n"
		"  --port        GTP-U UDP port for netdev mode (default " WIRE_STR(GTPU_PORT) ")\n"
		"  --rls-port    UERANSIM RLS UDP port for netdev mode (default " WIRE_STR(RLS_PORT) ")\n"
		"  --refresh-ms  print a thread's event at most once per MS (default 1000)\n"
		"  --every-event print every event (no de-duplication)\n"
		"  --map-size    threads remembered for de-duplication (default 16384)\n"
		"  --ready-file  once every probe is attached, write PATH (one JSON line);\n"
		"                removed on exit\n"
		"  --heartbeat-s print a heartbeat line every S s (default " WIRE_STR(HEARTBEAT_S)
		"; 0: none): bpf_printk\n"
		"                from a BPF program run on demand, else written to trace_marker\n"
		"  --instance    with trace_marker, also write it to this tracing instance's when\n"
		"                it exists (default " HEARTBEAT_INSTANCE "; empty: global only)\n"
		"  --list        print the probes of each mode and exit\n"
		"  --unload-gtp5g  unload gtp5g (rmmod) while tracers run, and exit: they let\n"
		"                go of it and attach again when it is loaded again\n"
		"  -v            show libbpf debug output and event counts every %d s\n",
		STATS_PERIOD_S);
}

static const char *trace_pipe_path(void)
{
	if (!access("/sys/kernel/tracing/trace_pipe", F_OK))
		return "/sys/kernel/tracing/trace_pipe";
	if (!access("/sys/kernel/debug/tracing/trace_pipe", F_OK))
		return "/sys/kernel/debug/tracing/trace_pipe";
	return NULL;
}

static void warn_tracing_off(void)
{
	const char *paths[] = { "/sys/kernel/tracing/tracing_on",
				"/sys/kernel/debug/tracing/tracing_on" };
	for (size_t i = 0; i < 2; i++) {
		FILE *f = fopen(paths[i], "r");
		int on = 1;
		if (!f)
			continue;
		if (fscanf(f, "%d", &on) == 1 && !on)
			fprintf(stderr, PROG ": warning: %s is 0, bpf_printk output is dropped until it is 1\n",
				paths[i]);
		fclose(f);
		return;
	}
}

/* ---- load + attach ---- */

struct config {
	unsigned kernel_hz;
	unsigned gtpu_port;
	unsigned rls_port;
	unsigned long refresh_ms;
	unsigned long map_size;
	bool every_event;
	/* netdev matches GTP-U too; not beside gtp5g's own uplink probe */
	bool gtpu_on_wire;
};

/* A loaded BPF object: normally one per mode holding all its programs,
 * one per program only after a joint load failed. */
struct object {
	struct gtp5g_fentry *fentry;
	struct gtp5g_netdev *netdev;
	struct bpf_object *obj;
};

static struct object objects[MAX_PROBES];
static int nobjects;
static struct bpf_link *links[MAX_PROBES];

static void report(size_t i, const char *why)
{
	if (why)
		printf(PROG ": %s: not attached: %s\n", probes[i].name, why);
	else
		printf(PROG ": %s: attached\n", probes[i].name);
	fflush(stdout);
}

/* De-duplicated, only the probes that name a sender are attached.
 * netdev: egress only; an arrival runs in the context the softirq found
 * (on loopback the sender again), so the ingress hook would cost every
 * packet and name no sender. fentry: gtp5g's uplink entry, which on a
 * one-host testbed runs in the gNB's sending thread (its G-PDU's receive
 * softirq runs as the send returns). The downlink functions run for
 * whoever sends into gtp5g's device (the data network side) or in a
 * softirq, and the rest of the uplink path repeats the entry's thread.
 * --every-event attaches all, --only what it names. */
static bool needed(const struct probe *p, const char *only, const struct config *c)
{
	if (c->every_event || (only && p->mode == MODE_FENTRY))
		return true;
	return p->mode == MODE_NETDEV ? egress(p) : fentry_default(p);
}

static bool target_ok(const struct probe *p, char *why, size_t len)
{
	return p->mode == MODE_FENTRY ? fentry_target_ok(p->func, why, len)
				      : netdev_target_ok(p->func, why, len);
}

/* The refresh period in the BPF side's clock (dedup_now()): jiffies when
 * HZ is known, at least one, else nanoseconds. */
static __u64 dedup_period(const struct config *c)
{
	__u64 ticks;

	if (!c->kernel_hz)
		return (__u64)c->refresh_ms * 1000000ULL;
	ticks = (__u64)c->refresh_ms * c->kernel_hz / 1000;
	return ticks ? ticks : 1;
}

/* The de-duplication settings both skeletons share (gtp5g_dedup.bpf.h);
 * a macro because each skeleton's rodata is a type of its own. */
#define SET_DEDUP_RODATA(skel, c)                                   \
	do {                                                        \
		(skel)->rodata->every_event = (c)->every_event;     \
		(skel)->rodata->dedup_period = dedup_period(c);     \
		(skel)->rodata->kernel_hz = (c)->kernel_hz;         \
	} while (0)

/* Configuration goes into .rodata before load, so the verifier sees
 * constants and drops the branches they rule out. */
static struct bpf_object *open_object(struct object *o, enum mode mode, const struct config *c)
{
	if (mode == MODE_FENTRY) {
		o->fentry = gtp5g_fentry__open();
		if (!o->fentry)
			return NULL;
		SET_DEDUP_RODATA(o->fentry, c);
		o->obj = o->fentry->obj;
	} else {
		o->netdev = gtp5g_netdev__open();
		if (!o->netdev)
			return NULL;
		SET_DEDUP_RODATA(o->netdev, c);
		o->netdev->rodata->gtpu_port = c->gtpu_on_wire ? (__u16)c->gtpu_port : 0;
		o->netdev->rodata->rls_port = (__u16)c->rls_port;
		o->obj = o->netdev->obj;
	}
	return o->obj;
}

static void close_object(struct object *o)
{
	gtp5g_fentry__destroy(o->fentry);
	gtp5g_netdev__destroy(o->netdev);
	memset(o, 0, sizeof(*o));
}

static int probe_index(const char *prog_name)
{
	for (size_t i = 0; i < nprobes; i++)
		if (!strcmp(probes[i].prog, prog_name))
			return (int)i;
	return -1;
}

/* The maps every object shares, so that de-duplication stays per thread
 * (not per object) and one counter array holds every event. Their fds are
 * kept apart from the objects: the gtp5g objects come and go with the
 * module, the counts stay. */
static const char *const shared_maps[] = { "last_printed", "per_cpu" };
#define NSHARED (sizeof(shared_maps) / sizeof(shared_maps[0]))
static int shared_fd[NSHARED] = { -1, -1 };

static int size_and_share_maps(struct bpf_object *obj, const struct config *c)
{
	int err = bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "last_printed"),
					   (__u32)c->map_size);

	for (size_t i = 0; !err && shared_fd[0] >= 0 && i < NSHARED; i++)
		err = bpf_map__reuse_fd(bpf_object__find_map_by_name(obj, shared_maps[i]),
					shared_fd[i]);
	return err;
}

/* After the first load: the maps outlive any object. */
static int keep_shared_maps(struct bpf_object *obj)
{
	if (shared_fd[0] >= 0)
		return 0;
	for (size_t i = 0; i < NSHARED; i++) {
		int fd = bpf_map__fd(bpf_object__find_map_by_name(obj, shared_maps[i]));

		shared_fd[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (shared_fd[i] < 0)
			return -errno;
	}
	return 0;
}

/* Loads the programs marked in want[] as one new object, objects[nobjects]. */
static int load_object(enum mode mode, const bool *want, const struct config *c, char *why,
		       size_t len)
{
	struct object *o = &objects[nobjects];
	struct bpf_program *prog;
	int err;

	reset_warn();
	if (!open_object(o, mode, c)) {
		err = -errno;
		failure_reason(why, len, "open failed", err);
		return err;
	}
	bpf_object__for_each_program(prog, o->obj) {
		int i = probe_index(bpf_program__name(prog));
		bpf_program__set_autoload(prog, i >= 0 && want[i]);
	}
	err = size_and_share_maps(o->obj, c);
	if (!err)
		err = bpf_object__load(o->obj);
	if (!err)
		err = keep_shared_maps(o->obj);
	if (err) {
		failure_reason(why, len, "load failed", err);
		close_object(o);
		return err;
	}
	nobjects++;
	return 0;
}

static int attach_loaded(struct bpf_object *obj, const bool *want)
{
	int attached = 0;

	for (size_t i = 0; i < nprobes; i++) {
		struct bpf_program *prog;
		char why[1024];

		if (!want[i])
			continue;
		reset_warn();
		prog = bpf_object__find_program_by_name(obj, probes[i].prog);
		links[i] = prog ? bpf_program__attach(prog) : NULL;
		if (!links[i]) {
			failure_reason(why, sizeof(why), "attach failed", prog ? -errno : -ENOENT);
			report(i, why);
			continue;
		}
		report(i, NULL);
		attached++;
	}
	return attached;
}

/* libbpf loads an object all-or-nothing: when one program is refused (e.g.
 * ip4_find_route's seven arguments on a kernel before 6.6), the others must
 * still attach, and the report must name the one refused. */
static int load_one_by_one(enum mode mode, const bool *want, const struct config *c)
{
	int attached = 0;

	for (size_t i = 0; i < nprobes; i++) {
		bool one[MAX_PROBES] = {};
		char why[1024];

		if (!want[i])
			continue;
		one[i] = true;
		if (load_object(mode, one, c, why, sizeof(why))) {
			report(i, why);
			continue;
		}
		attached += attach_loaded(objects[nobjects - 1].obj, one);
	}
	return attached;
}

/* The pre-checks decide which programs are worth loading; then one load
 * (kernel BTF parsed once, not once per probe). */
static int attach_mode(enum mode mode, char *only, const struct config *c, int *wanted)
{
	bool want[MAX_PROBES] = {};
	int nwant = 0;
	char why[1024];

	for (size_t i = 0; i < nprobes; i++) {
		if (probes[i].mode != mode || !selected(&probes[i], only))
			continue;
		if (!needed(&probes[i], only, c)) {
			report(i, probes[i].mode == MODE_NETDEV
					  ? "only with --every-event (de-duplicated, a sender is seen on egress)"
					  : "only with --every-event or --only (de-duplicated, the uplink "
					    "entry names the sender)");
			continue;
		}
		if (!target_ok(&probes[i], why, sizeof(why))) {
			report(i, why);
			continue;
		}
		want[i] = true;
		nwant++;
	}
	*wanted = nwant;
	if (!nwant)
		return 0;
	if (!load_object(mode, want, c, why, sizeof(why)))
		return attach_loaded(objects[nobjects - 1].obj, want);
	printf(PROG ": loading %d %s probes together failed (%s); loading them one by one\n", nwant,
	       mode_name(mode), why);
	return load_one_by_one(mode, want, c);
}

static int count_attached(void)
{
	int n = 0;

	for (size_t i = 0; i < nprobes; i++)
		n += links[i] != NULL;
	return n;
}

/* Lets go of gtp5g: its links (each holds a reference on the module), its
 * objects (whose programs were verified against this load of the module's
 * BTF) and that BTF. The shared maps stay. */
static void release_fentry(void)
{
	int kept = 0;

	for (size_t i = 0; i < nprobes; i++)
		if (probes[i].mode == MODE_FENTRY) {
			bpf_link__destroy(links[i]);
			links[i] = NULL;
		}
	for (int i = 0; i < nobjects; i++) {
		if (objects[i].fentry)
			close_object(&objects[i]);
		else
			objects[kept++] = objects[i];
	}
	/* No stale copy of a kept object where the next one is loaded. */
	memset(&objects[kept], 0, (size_t)(nobjects - kept) * sizeof(objects[0]));
	nobjects = kept;
	btf__free(gtp5g_btf);
	gtp5g_btf = NULL;
	gtp5g_btf_err = 0;
}

static void release_all(void)
{
	release_fentry();
	for (size_t i = 0; i < nprobes; i++)
		bpf_link__destroy(links[i]);
	for (int i = 0; i < nobjects; i++)
		close_object(&objects[i]);
	for (size_t i = 0; i < NSHARED; i++)
		if (shared_fd[i] >= 0)
			close(shared_fd[i]);
	btf__free(vmlinux_btf);
}

/* Printed and suppressed events so far, summed over CPUs; cache_hits are
 * the suppressed that cost no call (netdev's per-CPU cache), counted in
 * suppressed too. */
static void print_counts(void)
{
	int ncpus = libbpf_num_possible_cpus();
	unsigned long long printed = 0, suppressed = 0, hits = 0;
	__u32 zero = 0;

	if (shared_fd[1] < 0 || ncpus <= 0)
		return;
	struct dedup_cpu per_cpu[ncpus];

	if (bpf_map_lookup_elem(shared_fd[1], &zero, per_cpu))
		return;
	for (int cpu = 0; cpu < ncpus; cpu++) {
		printed += per_cpu[cpu].printed;
		suppressed += per_cpu[cpu].suppressed + per_cpu[cpu].cache_hits;
		hits += per_cpu[cpu].cache_hits;
	}
	printf(PROG ": events printed=%llu suppressed=%llu cache_hits=%llu\n", printed, suppressed,
	       hits);
	fflush(stdout);
}

/* ---- readiness, for machines (CONTRACTS.md) ---- */

/* PATH appears whole or not at all: written as PATH.tmp, synced, renamed. */
static int write_ready_file(const char *path, const char *line)
{
	char tmp[4096];
	size_t len = strlen(line);
	int fd, err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, line, len) != (ssize_t)len || fsync(fd))
		err = errno ? -errno : -EIO;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/* systemd's Type=notify: READY=1 to $NOTIFY_SOCKET ("@" is the abstract
 * namespace). Best effort: the ready file is the contract. */
static void notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = path ? strlen(path) : 0;
	int fd;

	if (!n || n >= sizeof(sa.sun_path) || (path[0] != '/' && path[0] != '@'))
		return;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = 0;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sa,
		   offsetof(struct sockaddr_un, sun_path) + n) < 0)
		fprintf(stderr, PROG ": warning: READY=1 to NOTIFY_SOCKET %s: %s\n", path,
			strerror(errno));
	close(fd);
}

static int announce_ready(const char *ready_file, enum mode mode, int attached, bool dedup)
{
	char line[128];
	int err;

	notify_ready();
	if (!ready_file)
		return 0;
	snprintf(line, sizeof(line), "{\"mode\":\"%s\",\"probes\":%d,\"dedup\":%s}\n",
		 mode_name(mode), attached, dedup ? "true" : "false");
	err = write_ready_file(ready_file, line);
	if (err)
		fprintf(stderr, PROG ": --ready-file %s: cannot write it: %s\n", ready_file,
			strerror(-err));
	return err;
}

struct args {
	enum mode mode;
	char *only;
	const char *ready_file;
	unsigned long heartbeat_s;
	const char *instance;
	bool list;
	bool unload_gtp5g;
	struct config config;
};

/* How long --unload-gtp5g retries while gtp5g is in use. */
#define UNLOAD_WAIT_MS 5000

/* A UPF upgrade's rmmod, with tracers running: the first attempt fails
 * (their probes hold gtp5g), but each tracer's unload watch sees it and lets
 * go, so a retry a moment later succeeds. kmod's rmmod never gets that far:
 * it reads the module's refcount and refuses by itself. */
static int unload_gtp5g(void)
{
	unsigned delay_ms = 1, waited_ms = 0;

	while (syscall(SYS_delete_module, "gtp5g", O_NONBLOCK)) {
		if (errno != EAGAIN || waited_ms >= UNLOAD_WAIT_MS) {
			fprintf(stderr, PROG ": --unload-gtp5g: %s\n",
				errno == EAGAIN ? "gtp5g is still in use after 5 s: by something other "
						  "than a gtp5g-tracer with its unload watch (lsmod says what)"
				: errno == ENOENT ? "gtp5g is not loaded"
						  : strerror(errno));
			return 1;
		}
		usleep(delay_ms * 1000);
		waited_ms += delay_ms;
		delay_ms = delay_ms < 100 ? delay_ms * 2 : delay_ms;
	}
	printf(PROG ": gtp5g unloaded\n");
	return 0;
}

/* 0 to go on, else the exit status (usage errors: 2). */
static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "only", required_argument, NULL, 'o' },
		{ "port", required_argument, NULL, 'p' },
		{ "rls-port", required_argument, NULL, 'r' },
		{ "refresh-ms", required_argument, NULL, 'R' },
		{ "every-event", no_argument, NULL, 'e' },
		{ "map-size", required_argument, NULL, 's' },
		{ "ready-file", required_argument, NULL, 'F' },
		{ "heartbeat-s", required_argument, NULL, 'H' },
		{ "instance", required_argument, NULL, 'I' },
		{ "list", no_argument, NULL, 'l' },
		{ "unload-gtp5g", no_argument, NULL, 'U' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	unsigned long port;
	int c;

	while ((c = getopt_long(argc, argv, "m:o:p:lvh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (!strcmp(optarg, "auto"))
				a->mode = MODE_AUTO;
			else if (!strcmp(optarg, "fentry"))
				a->mode = MODE_FENTRY;
			else if (!strcmp(optarg, "netdev"))
				a->mode = MODE_NETDEV;
			else if (!strcmp(optarg, "fentry+rls"))
				a->mode = MODE_FENTRY_RLS;
			else {
				fprintf(stderr, PROG ": --mode must be auto, fentry, netdev or fentry+rls, "
					"not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'o':
			a->only = optarg;
			break;
		case 'p':
		case 'r':
			if (parse_ul(c == 'p' ? "--port" : "--rls-port", optarg, 1, 65535, &port))
				return 2;
			*(c == 'p' ? &a->config.gtpu_port : &a->config.rls_port) = (unsigned)port;
			break;
		case 'R':
			/* An hour bounds the nanoseconds well inside 64 bits. */
			if (parse_ul("--refresh-ms", optarg, 1, 3600000, &a->config.refresh_ms))
				return 2;
			break;
		case 'e':
			a->config.every_event = true;
			break;
		case 's':
			/* The LRU map preallocates every entry: bound the memory. */
			if (parse_ul("--map-size", optarg, 1, 1UL << 22, &a->config.map_size))
				return 2;
			break;
		case 'F':
			if (!*optarg) {
				fprintf(stderr, PROG ": --ready-file: empty path\n");
				return 2;
			}
			a->ready_file = optarg;
			break;
		case 'H':
			if (parse_ul("--heartbeat-s", optarg, 0, 3600, &a->heartbeat_s))
				return 2;
			break;
		case 'I':
			if (strchr(optarg, '/') || !strcmp(optarg, ".") || !strcmp(optarg, "..")) {
				fprintf(stderr, PROG ": --instance '%s': a tracing instance name, not a path\n",
					optarg);
				return 2;
			}
			a->instance = optarg;
			break;
		case 'l':
			a->list = true;
			break;
		case 'U':
			a->unload_gtp5g = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (a->only && check_only(a->only))
		return 2;
	return 0;
}

/* CONFIG_HZ of the running kernel from /boot/config-<release> or
 * /proc/config.gz (gzopen reads both), 0 when neither says: the BPF side
 * then counts the refresh period with bpf_ktime_get_ns() instead of the
 * cheaper jiffies. */
static unsigned kernel_hz(void)
{
	char path[300], line[256];
	unsigned hz = 0;
	gzFile f;

	snprintf(path, sizeof(path), "/boot/config-%s", uts.release);
	f = gzopen(path, "r");
	if (!f)
		f = gzopen("/proc/config.gz", "r");
	if (!f)
		return 0;
	while (!hz && gzgets(f, line, sizeof(line)))
		if (sscanf(line, "CONFIG_HZ=%u", &hz) != 1)
			hz = 0;
	gzclose(f);
	return hz;
}

/* gtp5g's module BTF, for the load of the module now in the kernel. */
static void load_gtp5g_btf(void)
{
	btf__free(gtp5g_btf);
	gtp5g_btf = NULL;
	gtp5g_btf_err = 0;
	if (!access(GTP5G_BTF, F_OK) && vmlinux_btf) {
		gtp5g_btf = btf__load_module_btf("gtp5g", vmlinux_btf);
		if (!gtp5g_btf)
			gtp5g_btf_err = -errno;
	}
}

static enum mode resolve_auto(void)
{
	if (!access(GTP5G_BTF, F_OK)) {
		printf(PROG ": mode auto: %s exists, using fentry+rls (gtp5g's uplink entry for "
		       "GTP-U, the wire's egress for RLS)\n", GTP5G_BTF);
		return MODE_FENTRY_RLS;
	}
	if (!access(GTP5G_SYSFS, F_OK))
		/* Loaded but without BTF: kernels before 5.11 give modules none,
		 * later ones only when built with CONFIG_DEBUG_INFO_BTF_MODULES and
		 * pahole. fentry cannot name a function it has no type for. */
		printf(PROG ": mode auto: gtp5g is loaded but has no BTF (%s absent: Linux "
		       "before 5.11, or a gtp5g built without module BTF), so fentry cannot "
		       "attach to it; using netdev\n", GTP5G_BTF);
	else
		printf(PROG ": mode auto: %s absent (gtp5g not loaded), using netdev; gtp5g's "
		       "probes are added when it is loaded\n", GTP5G_BTF);
	return MODE_NETDEV;
}

/* ---- the heartbeat ---- */

/* Its BPF program, loaded once; NULL: the heartbeat goes to trace_marker. */
static struct gtp5g_heartbeat *beat;

static int beat_run(void)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts);

	return bpf_prog_test_run_opts(bpf_program__fd(beat->progs.gtp5g_heartbeat), &opts);
}

/* Loads the program and runs it once, the first heartbeat: 0, or why not
 * in why. */
static int load_heartbeat(const struct args *a, char *why, size_t len)
{
	int err;

	reset_warn();
	beat = gtp5g_heartbeat__open();
	if (!beat) {
		err = -errno;
		failure_reason(why, len, "open failed", err);
		return err;
	}
	beat->rodata->tracer_pid = (__u32)getpid();
	beat->rodata->interval_s = (__u32)a->heartbeat_s;
	err = gtp5g_heartbeat__load(beat);
	if (err) {
		failure_reason(why, len, "load failed", err);
		return err;
	}
	err = beat_run();
	if (err)
		snprintf(why, len, "test run failed: %s", -err == ENOTSUPP_
			 ? "not supported (raw_tp programs can be test-run since Linux 5.10)"
			 : strerror(-err));
	return err;
}

/* The BPF program where it runs, else trace_marker: said once, at start. */
static void start_heartbeat(const struct args *a)
{
	char why[1024];

	if (!a->heartbeat_s)
		return;
	if (!load_heartbeat(a, why, sizeof(why))) {
		printf(PROG ": heartbeat every %lu s: bpf_printk from a BPF program run on demand "
		       "(BPF_PROG_TEST_RUN)\n", a->heartbeat_s);
		return;
	}
	printf(PROG ": heartbeat every %lu s: written to trace_marker instead (needs a writable "
	       "tracefs): its BPF program's %s\n", a->heartbeat_s, why);
	gtp5g_heartbeat__destroy(beat);
	beat = NULL;
}

/* One trace_marker write; a missing instance is no error (the daemon may
 * not have made it yet, or read the global buffer). */
/* One marker write; a failure is said once per cause (*said keeps its errno),
 * not every beat, and again only after a write that worked. */
static void write_marker(const char *path, const char *line, size_t len, bool must_exist,
			 int *said)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), err = 0;

	if (fd < 0)
		err = (must_exist || errno != ENOENT) ? errno : 0;
	else if (write(fd, line, len) < 0)
		err = errno;
	if (fd >= 0)
		close(fd);
	if (err && err != *said)
		fprintf(stderr, PROG ": heartbeat: writing %s: %s (said once; the heartbeat "
			"goes on trying)\n", path, strerror(err));
	*said = err;
}

/* To the global buffer and, when it exists, the daemon's instance: a marker
 * write lands only in the buffer whose trace_marker is written. Reopened per
 * beat, so an instance made after start is found. */
static void marker_heartbeat(const struct args *a)
{
	const char *tp = trace_pipe_path();
	static int said_global, said_instance;
	char dir[64], path[PATH_MAX], line[96];
	int len;

	if (!tp)
		return;
	snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(tp, '/') - tp), tp);
	len = snprintf(line, sizeof(line), HEARTBEAT_FORMAT "\n", (unsigned)getpid(),
		       (unsigned)a->heartbeat_s);
	snprintf(path, sizeof(path), "%s/trace_marker", dir);
	write_marker(path, line, len, true, &said_global);
	if (a->instance && *a->instance) {
		snprintf(path, sizeof(path), "%s/instances/%s/trace_marker", dir, a->instance);
		write_marker(path, line, len, false, &said_instance);
	}
}

/* A run that fails after the first one did not (it has no cause but memory)
 * is reported and retried next period. */
static void heartbeat(const struct args *a)
{
	int err;

	if (!beat) {
		marker_heartbeat(a);
		return;
	}
	err = beat_run();
	if (err)
		fprintf(stderr, PROG ": heartbeat: test run failed: %s\n", strerror(-err));
}

/* ---- following gtp5g: loaded late, reloaded, upgraded ---- */

/* How long the gtp5g probes stay released after an unload attempt that
 * did not unload (a refused rmmod, a retry that never came). */
#define RELEASE_GRACE_S 10
/* How often a released or absent gtp5g is looked for: a stat(). */
#define WATCH_PERIOD_MS 1000

enum gtp5g_state {
	GTP5G_ATTACHED, /* probes on the load `ino` */
	GTP5G_RELEASED, /* let go of the load `ino` for an unload attempt */
	GTP5G_WAITING,	/* absent, or `ino` gave no probe: wait for a new load */
	GTP5G_RETRY,	/* `ino` gave some probes only: try again next period */
};

struct follow {
	bool on;
	enum gtp5g_state state;
	ino_t ino; /* /sys/module/gtp5g's inode: a new one for every load */
	int tries; /* attach attempts on `ino` */
	time_t released;
	const char *only;
	const struct config *config;
	struct gtp5g_unload *unload;
	struct ring_buffer *attempts;
};

static time_t monotonic_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The load of gtp5g now in the kernel, 0 when none is live. */
static ino_t gtp5g_load(void)
{
	char state[16] = "";
	struct stat st;
	FILE *f;

	if (stat(GTP5G_SYSFS, &st))
		return 0;
	f = fopen(GTP5G_SYSFS "/initstate", "r");
	if (!f)
		return 0;
	if (!fgets(state, sizeof(state), f))
		state[0] = 0;
	fclose(f);
	return strncmp(state, "live", 4) ? 0 : st.st_ino;
}

static int on_unload_attempt(void *ctx, void *data, size_t size)
{
	struct follow *f = ctx;

	(void)size;
	if (f->state != GTP5G_ATTACHED)
		return 0;
	release_fentry();
	f->state = GTP5G_RELEASED;
	f->released = monotonic_s();
	printf(PROG ": pid %u is unloading gtp5g: its probes are released (the unload's retry "
	       "succeeds: gtp5g-tracer --unload-gtp5g); they come back when gtp5g is loaded again\n",
	       *(__u32 *)data);
	fflush(stdout);
	return 0;
}

/* The unload watch, once gtp5g's probes first attach: without it (no
 * syscall tracepoints) an rmmod of gtp5g fails while they are attached. */
#define NO_UNLOAD_WATCH "; gtp5g cannot be unloaded while the tracer runs: stop it first"

static void start_unload_watch(struct follow *f)
{
	const char *tp = "tp/syscalls/sys_enter_delete_module";
	char why[1024];
	int err;

	if (f->unload)
		return;
	if (access("/sys/kernel/tracing/events/syscalls", F_OK) &&
	    access("/sys/kernel/debug/tracing/events/syscalls", F_OK)) {
		printf(PROG ": unload watch (%s): not attached: this kernel has no syscall "
		       "tracepoints (CONFIG_FTRACE_SYSCALLS)" NO_UNLOAD_WATCH "\n", tp);
		return;
	}
	reset_warn();
	f->unload = gtp5g_unload__open_and_load();
	err = f->unload ? gtp5g_unload__attach(f->unload) : -errno;
	if (!err) {
		f->attempts = ring_buffer__new(bpf_map__fd(f->unload->maps.unload_attempts),
					       on_unload_attempt, f, NULL);
		err = f->attempts ? 0 : -errno;
	}
	if (err) {
		failure_reason(why, sizeof(why), "not attached", err);
		printf(PROG ": unload watch (%s): %s" NO_UNLOAD_WATCH "\n", tp, why);
		ring_buffer__free(f->attempts);
		f->attempts = NULL;
		gtp5g_unload__destroy(f->unload);
		f->unload = NULL;
		return;
	}
	printf(PROG ": unload watch (%s): attached\n", tp);
}

static void stop_unload_watch(struct follow *f)
{
	ring_buffer__free(f->attempts);
	gtp5g_unload__destroy(f->unload);
}

/* Kernel BTF objects named gtp5g. The BTF of a load just unloaded lingers
 * until the programs verified against it are freed (after an RCU grace
 * period), and libbpf would resolve the probes' targets in the first one it
 * finds: the new load's probes wait until only one is left. */
static int gtp5g_btf_objects(void)
{
	__u32 id = 0;
	int n = 0;

	while (!bpf_btf_get_next_id(id, &id)) {
		char name[16] = "";
		struct bpf_btf_info info = { .name = (__u64)(unsigned long)name,
					     .name_len = sizeof(name) };
		__u32 len = sizeof(info);
		int fd = bpf_btf_get_fd_by_id(id);

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) && !strcmp(name, "gtp5g"))
			n++;
		close(fd);
	}
	return n;
}

/* Attempts on one load of gtp5g whose probes do not all attach. */
#define ATTACH_TRIES 5

/* The fentry probes on the load of gtp5g now in the kernel. Right after a
 * reload libbpf may still resolve a probe in the old load's BTF (where
 * listing BTF objects to wait for it to go needs CAP_SYS_ADMIN): with
 * `retry`, a load whose probes do not all attach is let go and tried again
 * next period, a few times. */
static int attach_gtp5g(struct follow *f, bool retry)
{
	ino_t ino = gtp5g_load();
	int n, wanted = 0;

	f->tries = ino == f->ino ? f->tries + 1 : 1;
	f->ino = ino;
	load_gtp5g_btf();
	n = attach_mode(MODE_FENTRY, (char *)f->only, f->config, &wanted);
	if (retry && n < wanted && f->tries < ATTACH_TRIES) {
		printf(PROG ": gtp5g: %d of %d probes attached; trying again\n", n, wanted);
		release_fentry();
		f->state = GTP5G_RETRY;
		return 0;
	}
	if (n)
		start_unload_watch(f);
	else
		release_fentry();
	f->state = n ? GTP5G_ATTACHED : GTP5G_WAITING;
	return n;
}

/* Each period while the probes are off gtp5g. */
static void follow_tick(struct follow *f)
{
	ino_t now = gtp5g_load();
	bool grace_over = monotonic_s() - f->released >= RELEASE_GRACE_S;
	int n;

	if (f->state == GTP5G_ATTACHED ||
	    (f->state == GTP5G_RELEASED && now && now == f->ino && !grace_over))
		return;
	if (!now) {
		if (f->state == GTP5G_RELEASED)
			printf(PROG ": gtp5g unloaded\n");
		f->state = GTP5G_WAITING;
		f->ino = 0;
		fflush(stdout);
		return;
	}
	if ((f->state == GTP5G_WAITING && now == f->ino) || gtp5g_btf_objects() > 1)
		return;
	if (f->state != GTP5G_RETRY)
		printf(PROG ": gtp5g %s: attaching its probes\n",
		       now == f->ino ? "still loaded after the unload attempt" : "loaded");
	n = attach_gtp5g(f, true);
	if (f->state == GTP5G_RETRY)
		return;
	printf(PROG ": gtp5g: %d probes attached, %d in all\n", n, count_attached());
	fflush(stdout);
}

/* Milliseconds until `due` (monotonic seconds), for poll. */
static int ms_until(time_t due)
{
	time_t now = monotonic_s();

	return due > now ? (int)(due - now) * 1000 : 0;
}

/* Until one of the signals in *term, following gtp5g meanwhile; a heartbeat
 * every a->heartbeat_s and, with -v, the counts every period. */
static int run(const sigset_t *term, struct follow *f, const struct args *a)
{
	int sfd = signalfd(-1, term, SFD_CLOEXEC);
	time_t stats_due = monotonic_s() + STATS_PERIOD_S;
	/* start_heartbeat's test run was the first heartbeat. */
	time_t beat_due = monotonic_s() + (beat ? (time_t)a->heartbeat_s : 0);
	struct signalfd_siginfo si;

	if (sfd < 0) {
		fprintf(stderr, PROG ": signalfd: %s\n", strerror(errno));
		return SIGTERM;
	}
	for (;;) {
		struct pollfd p[2] = { { sfd, POLLIN, 0 },
				       { f->attempts ? ring_buffer__epoll_fd(f->attempts) : -1, POLLIN, 0 } };
		int timeout = f->on && f->state != GTP5G_ATTACHED ? WATCH_PERIOD_MS : -1;

		if (a->heartbeat_s && monotonic_s() >= beat_due) {
			heartbeat(a);
			beat_due = monotonic_s() + a->heartbeat_s;
		}
		if (verbose && (timeout < 0 || timeout > STATS_PERIOD_S * 1000))
			timeout = STATS_PERIOD_S * 1000;
		if (a->heartbeat_s && (timeout < 0 || timeout > ms_until(beat_due)))
			timeout = ms_until(beat_due);
		if (poll(p, 2, timeout) < 0 && errno != EINTR) {
			fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
			break;
		}
		if (p[0].revents && read(sfd, &si, sizeof(si)) == sizeof(si)) {
			close(sfd);
			return (int)si.ssi_signo;
		}
		if (p[1].revents)
			ring_buffer__consume(f->attempts);
		if (f->on)
			follow_tick(f);
		if (verbose && monotonic_s() >= stats_due) {
			print_counts();
			stats_due = monotonic_s() + STATS_PERIOD_S;
		}
	}
	close(sfd);
	return SIGTERM;
}

/* The probes of the mode, at start. In auto mode gtp5g may be present but
 * unusable (e.g. its functions inlined, or fentry refused): GTP-U on the
 * wire is still visible, so netdev then matches it too. */
static int attach_start(enum mode *mode, enum mode asked, struct follow *f, struct config *c)
{
	int n = 0, wanted;

	f->state = GTP5G_WAITING;
	if (follows_gtp5g(*mode))
		n = attach_gtp5g(f, false);
	if (*mode == MODE_FENTRY_RLS && !n && asked == MODE_AUTO) {
		printf(PROG ": mode auto: no fentry probe attached, falling back to netdev\n");
		*mode = MODE_NETDEV;
	}
	c->gtpu_on_wire = *mode == MODE_NETDEV;
	if (*mode != MODE_FENTRY)
		n += attach_mode(MODE_NETDEV, (char *)f->only, c, &wanted);
	return n;
}

int main(int argc, char **argv)
{
	struct args a = {
		.mode = MODE_AUTO,
		.heartbeat_s = HEARTBEAT_S,
		.instance = HEARTBEAT_INSTANCE,
		.config = { .gtpu_port = GTPU_PORT, .rls_port = RLS_PORT, .refresh_ms = 1000, .map_size = 16384 },
	};
	struct follow follow = { .only = NULL };
	enum mode mode;
	sigset_t term;
	int err, attached, sig;

	if (collect_probes())
		return 1;
	err = parse_args(argc, argv, &a);
	if (err)
		return err;
	if (a.list) {
		list_probes();
		return 0;
	}
	if (a.unload_gtp5g)
		return unload_gtp5g();
	if (!privileged()) {
		fprintf(stderr, PROG ": not privileged: loading BPF tracing programs needs root "
			"(CAP_SYS_ADMIN) or CAP_BPF+CAP_PERFMON\n");
		return 1;
	}

	/* A waiter must never take a previous run's file for this one's. */
	if (a.ready_file && unlink(a.ready_file) && errno != ENOENT) {
		fprintf(stderr, PROG ": --ready-file %s: cannot remove the old one: %s\n",
			a.ready_file, strerror(errno));
		return 1;
	}
	libbpf_set_print(libbpf_print);
	uname(&uts);
	vmlinux_btf = btf__load_vmlinux_btf();
	a.config.kernel_hz = kernel_hz();
	if (verbose)
		printf(PROG ": kernel HZ %u (0: unknown, period timed in ns)\n", a.config.kernel_hz);
	mode = a.mode == MODE_AUTO ? resolve_auto() : a.mode;

	/* Blocked from here on and only taken in sigwaitinfo(): a SIGTERM that
	 * arrives during a slow load stays pending instead of killing us with
	 * half the probes attached. */
	sigemptyset(&term);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGHUP);
	sigprocmask(SIG_BLOCK, &term, NULL);

	follow.only = a.only;
	follow.config = &a.config;
	attached = attach_start(&mode, a.mode, &follow, &a.config);
	fflush(stdout);

	if (!attached) {
		fprintf(stderr, PROG ": no probe attached (mode %s), exiting\n", mode_name(mode));
		release_all();
		return 1;
	}

	start_heartbeat(&a);
	const char *tp = trace_pipe_path();
	if (!tp)
		fprintf(stderr, PROG ": warning: tracefs not mounted; run: mount -t tracefs nodev /sys/kernel/tracing\n");
	else
		warn_tracing_off();
	printf(PROG ": %d probes attached (mode %s, %s), printing to %s\n", attached,
	       mode_name(mode), a.config.every_event ? "every event" : "de-duplicated",
	       tp ? tp : "/sys/kernel/tracing/trace_pipe");
	fflush(stdout);
	/* Every mode that can use gtp5g follows it from here on. */
	follow.on = a.mode == MODE_AUTO || follows_gtp5g(mode);
	if (announce_ready(a.ready_file, mode, attached, !a.config.every_event)) {
		stop_unload_watch(&follow);
		gtp5g_heartbeat__destroy(beat);
		release_all();
		return 1;
	}

	sig = run(&term, &follow, &a);
	if (a.ready_file)
		unlink(a.ready_file);
	print_counts();
	attached = count_attached();
	stop_unload_watch(&follow);
	gtp5g_heartbeat__destroy(beat);
	release_all();
	printf(PROG ": detached %d probes (signal %d), exiting\n", attached, sig);
	fflush(stdout);
	/* SIGINT and SIGTERM are asked-for stops; a hang-up is not, and only a
	 * failure status lets Restart=on-failure bring the tracer back. */
	return sig == SIGHUP ? 128 + SIGHUP : 0;
}
