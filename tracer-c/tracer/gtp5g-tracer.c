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
#include <unistd.h>
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
#include "gtp5g_dedup.h"
#include "wire.h"

#define PROG "gtp5g-tracer"
#include "cli.h"
#define GTP5G_BTF "/sys/kernel/btf/gtp5g"
/* The heartbeat: written to trace_marker (no BPF program fires) so that the
 * daemon tells a dead tracer from a quiet user plane. Its text is a contract
 * with the daemon's parser (src/parse/heartbeat.rs; tracer-c/README.md). */
#define HEARTBEAT_PREFIX PROG " heartbeat: "
#define HEARTBEAT_S 5
#define HEARTBEAT_INSTANCE "gtp5g-operator"
/* How often -v reports the event counts. */
#define STATS_PERIOD_S 10

enum mode { MODE_AUTO, MODE_FENTRY, MODE_NETDEV };

static const char *mode_name(enum mode m)
{
	return m == MODE_FENTRY ? "fentry" : m == MODE_NETDEV ? "netdev" : "auto";
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

static void failure_reason(char *out, size_t len, const char *what, int err)
{
	int n = snprintf(out, len, "%s: %s", what, strerror(err < 0 ? -err : err));
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

static bool fentry_target_ok(const char *func, char *why, size_t len)
{
	if (vmlinux_btf && btf__find_by_name_kind(vmlinux_btf, func, BTF_KIND_FUNC) > 0)
		return true; /* gtp5g built into the kernel */
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
	if (btf__find_by_name_kind(gtp5g_btf, func, BTF_KIND_FUNC) <= 0) {
		snprintf(why, len, "missing symbol: module gtp5g has no function '%s' in its BTF "
			 "(not in this gtp5g version, or inlined)", func);
		return false;
	}
	return true;
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

static void list_probes(void)
{
	printf("mode fentry (gtp5g module functions; needs %s):\n", GTP5G_BTF);
	for (size_t i = 0; i < nprobes; i++)
		if (probes[i].mode == MODE_FENTRY)
			printf("  %-32s %s\n", probes[i].name, probes[i].func);
	printf("mode netdev (any kernel with BTF; GTP-U over UDP, IPv4/IPv6):\n");
	for (size_t i = 0; i < nprobes; i++)
		if (probes[i].mode == MODE_NETDEV)
			printf("  %-32s %s (%s)\n", probes[i].name, probes[i].func,
			       egress(&probes[i]) ? "egress" : "ingress, with --every-event only");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--mode auto|fentry|netdev] [--only FUNC,...] [--port N] [--rls-port N]\n"
		"       [--refresh-ms MS] [--every-event] [--map-size N] [--ready-file PATH]\n"
		"       [--heartbeat-s S] [--instance NAME] [--list] [-v]\n"
		"  --mode        auto (default): fentry when " GTP5G_BTF " exists, else netdev\n"
		"  --only        attach only these probes (function/tracepoint or probe name)\n"
		"  --port        GTP-U UDP port for netdev mode (default " WIRE_STR(GTPU_PORT) ")\n"
		"  --rls-port    UERANSIM RLS UDP port for netdev mode (default " WIRE_STR(RLS_PORT) ")\n"
		"  --refresh-ms  print a thread's event at most once per MS (default 1000)\n"
		"  --every-event print every event (no de-duplication)\n"
		"  --map-size    threads remembered for de-duplication (default 16384)\n"
		"  --ready-file  once every probe is attached, write PATH (one JSON line);\n"
		"                removed on exit\n"
		"  --heartbeat-s write a heartbeat line to trace_marker every S s (default "
		WIRE_STR(HEARTBEAT_S) "; 0: none)\n"
		"  --instance    also write it to this tracing instance's trace_marker when the\n"
		"                instance exists (default " HEARTBEAT_INSTANCE "; empty: global only)\n"
		"  --list        print the probes of each mode and exit\n"
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

/* De-duplicated, netdev mode needs egress only: an arrival runs in the
 * context the softirq found (on loopback the sender again), so the ingress
 * hook would cost every packet and name no sender. */
static bool needed(const struct probe *p, const struct config *c)
{
	return c->every_event || p->mode != MODE_NETDEV || egress(p);
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
		o->netdev->rodata->gtpu_port = (__u16)c->gtpu_port;
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

/* Every object shares the first one's maps, so that de-duplication stays
 * per thread (not per object) and one counter array holds every event. */
static int size_and_share_maps(struct bpf_object *obj, const struct config *c)
{
	static const char *shared[] = { "last_printed", "per_cpu" };
	int err = bpf_map__set_max_entries(bpf_object__find_map_by_name(obj, "last_printed"),
					   (__u32)c->map_size);

	for (size_t i = 0; !err && nobjects && i < sizeof(shared) / sizeof(shared[0]); i++) {
		struct bpf_map *first = bpf_object__find_map_by_name(objects[0].obj, shared[i]);
		err = bpf_map__reuse_fd(bpf_object__find_map_by_name(obj, shared[i]),
					bpf_map__fd(first));
	}
	return err;
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
static int attach_mode(enum mode mode, char *only, const struct config *c)
{
	bool want[MAX_PROBES] = {};
	int nwant = 0;
	char why[1024];

	for (size_t i = 0; i < nprobes; i++) {
		if (probes[i].mode != mode || !selected(&probes[i], only))
			continue;
		if (!needed(&probes[i], c)) {
			report(i, "only with --every-event (de-duplicated, a sender is seen on egress)");
			continue;
		}
		if (!target_ok(&probes[i], why, sizeof(why))) {
			report(i, why);
			continue;
		}
		want[i] = true;
		nwant++;
	}
	if (!nwant)
		return 0;
	if (!load_object(mode, want, c, why, sizeof(why)))
		return attach_loaded(objects[nobjects - 1].obj, want);
	printf(PROG ": loading %d %s probes together failed (%s); loading them one by one\n", nwant,
	       mode_name(mode), why);
	return load_one_by_one(mode, want, c);
}

static void release_all(void)
{
	for (size_t i = 0; i < nprobes; i++)
		bpf_link__destroy(links[i]);
	for (int i = 0; i < nobjects; i++)
		close_object(&objects[i]);
	btf__free(gtp5g_btf);
	btf__free(vmlinux_btf);
}

/* Printed and suppressed events so far, summed over CPUs. */
static void print_counts(void)
{
	int ncpus = libbpf_num_possible_cpus();
	unsigned long long printed = 0, suppressed = 0;
	__u32 zero = 0;

	if (!nobjects || ncpus <= 0)
		return;
	struct dedup_cpu per_cpu[ncpus];
	struct bpf_map *m = bpf_object__find_map_by_name(objects[0].obj, "per_cpu");

	if (bpf_map_lookup_elem(bpf_map__fd(m), &zero, per_cpu))
		return;
	for (int cpu = 0; cpu < ncpus; cpu++) {
		printed += per_cpu[cpu].printed;
		suppressed += per_cpu[cpu].suppressed;
	}
	printf(PROG ": events printed=%llu suppressed=%llu\n", printed, suppressed);
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
	struct config config;
};

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
			else {
				fprintf(stderr, PROG ": --mode must be auto, fentry or netdev, not '%s'\n", optarg);
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
	struct utsname u;
	unsigned hz = 0;
	gzFile f = NULL;

	if (!uname(&u)) {
		snprintf(path, sizeof(path), "/boot/config-%s", u.release);
		f = gzopen(path, "r");
	}
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

static void load_btf(void)
{
	vmlinux_btf = btf__load_vmlinux_btf();
	if (!access(GTP5G_BTF, F_OK) && vmlinux_btf) {
		gtp5g_btf = btf__load_module_btf("gtp5g", vmlinux_btf);
		if (!gtp5g_btf)
			gtp5g_btf_err = -errno;
	}
}

static enum mode resolve_auto(void)
{
	if (!access(GTP5G_BTF, F_OK)) {
		printf(PROG ": mode auto: %s exists, using fentry\n", GTP5G_BTF);
		return MODE_FENTRY;
	}
	printf(PROG ": mode auto: %s absent (gtp5g not loaded), using netdev\n", GTP5G_BTF);
	return MODE_NETDEV;
}

/* One trace_marker write; a missing instance is no error (the daemon may
 * not have made it yet, or read the global buffer). */
static void write_marker(const char *path, const char *line, size_t len, bool must_exist)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0) {
		if (must_exist || errno != ENOENT)
			fprintf(stderr, PROG ": heartbeat: %s: %s\n", path, strerror(errno));
		return;
	}
	if (write(fd, line, len) < 0)
		fprintf(stderr, PROG ": heartbeat: writing %s: %s\n", path, strerror(errno));
	close(fd);
}

/* To the global buffer and, when it exists, the daemon's instance: a marker
 * write lands only in the buffer whose trace_marker is written. Reopened per
 * beat, so an instance made after start is found. */
static void heartbeat(const struct args *a)
{
	const char *tp = trace_pipe_path();
	char dir[64], path[PATH_MAX], line[96];
	int len;

	if (!tp)
		return;
	snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(tp, '/') - tp), tp);
	len = snprintf(line, sizeof(line), HEARTBEAT_PREFIX "pid=%d interval_s=%lu\n", (int)getpid(),
		       a->heartbeat_s);
	snprintf(path, sizeof(path), "%s/trace_marker", dir);
	write_marker(path, line, len, true);
	if (a->instance && *a->instance) {
		snprintf(path, sizeof(path), "%s/instances/%s/trace_marker", dir, a->instance);
		write_marker(path, line, len, false);
	}
}

static time_t monotonic_s(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec;
}

/* Until one of the signals in *term; meanwhile a heartbeat every
 * a->heartbeat_s and, with -v, the counts every period. */
static int wait_for_signal(const sigset_t *term, const struct args *a)
{
	time_t now = monotonic_s(), next_beat = now, next_counts = now + STATS_PERIOD_S;
	int sig;

	do {
		if (a->heartbeat_s && now >= next_beat) {
			heartbeat(a);
			next_beat = now + a->heartbeat_s;
		}
		if (verbose && now >= next_counts) {
			print_counts();
			next_counts = now + STATS_PERIOD_S;
		}
		time_t next = a->heartbeat_s ? next_beat : next_counts;
		if (verbose && next_counts < next)
			next = next_counts;
		struct timespec wait = { next > now ? next - now : 0, 0 };

		sig = a->heartbeat_s || verbose ? sigtimedwait(term, NULL, &wait)
						: sigwaitinfo(term, NULL);
		now = monotonic_s();
	} while (sig < 0);
	return sig;
}

int main(int argc, char **argv)
{
	struct args a = {
		.mode = MODE_AUTO,
		.heartbeat_s = HEARTBEAT_S,
		.instance = HEARTBEAT_INSTANCE,
		.config = { .gtpu_port = GTPU_PORT, .rls_port = RLS_PORT, .refresh_ms = 1000, .map_size = 16384 },
	};
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
	load_btf();
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

	attached = attach_mode(mode, a.only, &a.config);
	/* In auto mode gtp5g may be present but unusable (e.g. its functions
	 * inlined); GTP-U on the wire is still visible. */
	if (!attached && a.mode == MODE_AUTO && mode == MODE_FENTRY) {
		printf(PROG ": mode auto: no fentry probe attached, falling back to netdev\n");
		mode = MODE_NETDEV;
		attached = attach_mode(mode, a.only, &a.config);
	}
	fflush(stdout);

	if (!attached) {
		fprintf(stderr, PROG ": no probe attached (mode %s), exiting\n", mode_name(mode));
		release_all();
		return 1;
	}

	const char *tp = trace_pipe_path();
	if (!tp)
		fprintf(stderr, PROG ": warning: tracefs not mounted; run: mount -t tracefs nodev /sys/kernel/tracing\n");
	else
		warn_tracing_off();
	printf(PROG ": %d probes attached (mode %s, %s), printing to %s\n", attached,
	       mode_name(mode), a.config.every_event ? "every event" : "de-duplicated",
	       tp ? tp : "/sys/kernel/tracing/trace_pipe");
	fflush(stdout);
	if (announce_ready(a.ready_file, mode, attached, !a.config.every_event)) {
		release_all();
		return 1;
	}

	sig = wait_for_signal(&term, &a);
	if (a.ready_file)
		unlink(a.ready_file);
	print_counts();
	release_all();
	printf(PROG ": detached %d probes (signal %d), exiting\n", attached, sig);
	fflush(stdout);
	/* SIGINT and SIGTERM are asked-for stops; a hang-up is not, and only a
	 * failure status lets Restart=on-failure bring the tracer back. */
	return sig == SIGHUP ? 128 + SIGHUP : 0;
}
