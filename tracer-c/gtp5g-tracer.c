// SPDX-License-Identifier: GPL-2.0
/*
 * gtp5g-tracer: loads the gtp5g BPF tracer and keeps it attached until
 * SIGINT/SIGTERM. Its programs print to the kernel's trace_pipe, which the
 * gtp5g-operator daemon tails.
 *
 * Every probe lives in its own skeleton instance (its own bpf_object) with
 * only that program autoloaded: libbpf loads an object all-or-nothing, and a
 * gtp5g build that lacks one function (e.g. policePacket in older releases)
 * must not cost the other probes.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/capability.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "gtp5g_fentry.skel.h"
#include "gtp5g_netdev.skel.h"

#define PROG "gtp5g-tracer"
#include "cli.h"
#define GTP5G_BTF "/sys/kernel/btf/gtp5g"

enum mode { MODE_AUTO, MODE_FENTRY, MODE_NETDEV };

static const char *mode_name(enum mode m)
{
	return m == MODE_FENTRY ? "fentry" : m == MODE_NETDEV ? "netdev" : "auto";
}

struct probe {
	enum mode mode;
	const char *name; /* as printed in trace_pipe messages / --list */
	const char *prog; /* BPF program name in the object */
	const char *func; /* kernel function or tracepoint, for --only */
};

static const struct probe probes[] = {
	{ MODE_FENTRY, "fentry/gtp5g_encap_recv", "fentry_gtp5g_encap_recv", "gtp5g_encap_recv" },
	{ MODE_FENTRY, "fexit/gtp5g_encap_recv", "fexit_gtp5g_encap_recv", "gtp5g_encap_recv" },
	{ MODE_FENTRY, "fentry/gtp5g_xmit_skb_ipv4", "fentry_gtp5g_xmit_skb_ipv4", "gtp5g_xmit_skb_ipv4" },
	{ MODE_FENTRY, "fexit/gtp5g_xmit_skb_ipv4", "fexit_gtp5g_xmit_skb_ipv4", "gtp5g_xmit_skb_ipv4" },
	{ MODE_FENTRY, "fentry/gtp5g_handle_skb_ipv4", "fentry_gtp5g_handle_skb_ipv4", "gtp5g_handle_skb_ipv4" },
	{ MODE_FENTRY, "fexit/gtp5g_handle_skb_ipv4", "fexit_gtp5g_handle_skb_ipv4", "gtp5g_handle_skb_ipv4" },
	{ MODE_FENTRY, "fentry/gtp5g_push_header", "fentry_gtp5g_push_header", "gtp5g_push_header" },
	{ MODE_FENTRY, "fexit/gtp5g_push_header", "fexit_gtp5g_push_header", "gtp5g_push_header" },
	{ MODE_FENTRY, "fentry/pdr_find_by_gtp1u", "fentry_pdr_find_by_gtp1u", "pdr_find_by_gtp1u" },
	{ MODE_FENTRY, "fexit/pdr_find_by_gtp1u", "fexit_pdr_find_by_gtp1u", "pdr_find_by_gtp1u" },
	{ MODE_FENTRY, "fentry/ip4_find_route", "fentry_ip4_find_route", "ip4_find_route" },
	{ MODE_FENTRY, "fexit/ip4_find_route", "fexit_ip4_find_route", "ip4_find_route" },
	{ MODE_FENTRY, "fentry/policePacket", "fentry_policePacket", "policePacket" },
	{ MODE_NETDEV, "tp/net_dev_queue", "tp_net_dev_queue", "net_dev_queue" },
	{ MODE_NETDEV, "tp/netif_receive_skb", "tp_netif_receive_skb", "netif_receive_skb" },
};
#define NPROBES (sizeof(probes) / sizeof(probes[0]))

struct slot {
	const struct probe *p;
	struct gtp5g_fentry *fentry;
	struct gtp5g_netdev *netdev;
	struct bpf_link *link;
};

static struct slot slots[NPROBES];
static bool verbose;
static volatile sig_atomic_t stop_sig;

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

/* ---- per-probe load + attach ---- */

static void only_this_program(struct bpf_object *obj, const char *prog_name)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, obj)
		bpf_program__set_autoload(prog, !strcmp(bpf_program__name(prog), prog_name));
}

static int attach_link(struct slot *s, struct bpf_object *obj, char *why, size_t len)
{
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, s->p->prog);
	int err;

	if (!prog) {
		snprintf(why, len, "internal error: program %s not in BPF object", s->p->prog);
		return -ENOENT;
	}
	s->link = bpf_program__attach(prog);
	if (!s->link) {
		err = -errno;
		failure_reason(why, len, "attach failed", err);
		return err;
	}
	return 0;
}

static int load_fentry(struct slot *s, char *why, size_t len)
{
	int err;

	if (!fentry_target_ok(s->p->func, why, len))
		return -ENOENT;
	reset_warn();
	s->fentry = gtp5g_fentry__open();
	if (!s->fentry) {
		failure_reason(why, len, "open failed", -errno);
		return -1;
	}
	only_this_program(s->fentry->obj, s->p->prog);
	err = gtp5g_fentry__load(s->fentry);
	if (err) {
		failure_reason(why, len, "load failed", err);
		return err;
	}
	return attach_link(s, s->fentry->obj, why, len);
}

static int load_netdev(struct slot *s, unsigned port, char *why, size_t len)
{
	int err;

	if (!netdev_target_ok(s->p->func, why, len))
		return -ENOENT;
	reset_warn();
	s->netdev = gtp5g_netdev__open();
	if (!s->netdev) {
		failure_reason(why, len, "open failed", -errno);
		return -1;
	}
	s->netdev->rodata->gtpu_port = (__u16)port;
	only_this_program(s->netdev->obj, s->p->prog);
	err = gtp5g_netdev__load(s->netdev);
	if (err) {
		failure_reason(why, len, "load failed", err);
		return err;
	}
	return attach_link(s, s->netdev->obj, why, len);
}

static void release(struct slot *s)
{
	bpf_link__destroy(s->link);
	s->link = NULL;
	gtp5g_fentry__destroy(s->fentry);
	s->fentry = NULL;
	gtp5g_netdev__destroy(s->netdev);
	s->netdev = NULL;
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
		for (size_t i = 0; i < NPROBES; i++)
			if (!strcmp(tok, probes[i].func) || !strcmp(tok, probes[i].name))
				found = true;
		if (!found) {
			fprintf(stderr, PROG ": --only: unknown probe or function '%s' (see --list)\n", tok);
			bad = 1;
		}
	}
	return bad;
}

static void list_probes(void)
{
	printf("mode fentry (gtp5g module functions; needs %s):\n", GTP5G_BTF);
	for (size_t i = 0; i < NPROBES; i++)
		if (probes[i].mode == MODE_FENTRY)
			printf("  %-32s %s\n", probes[i].name, probes[i].func);
	printf("mode netdev (any kernel with BTF; GTP-U over UDP, IPv4/IPv6):\n");
	for (size_t i = 0; i < NPROBES; i++)
		if (probes[i].mode == MODE_NETDEV)
			printf("  %-32s %s (%s)\n", probes[i].name, probes[i].func,
			       !strcmp(probes[i].func, "net_dev_queue") ? "egress" : "ingress");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: " PROG " [--mode auto|fentry|netdev] [--only FUNC,...] [--port N] [--list] [-v]\n"
		"  --mode    auto (default): fentry when " GTP5G_BTF " exists, else netdev\n"
		"  --only    attach only these probes (function/tracepoint or probe name)\n"
		"  --port    GTP-U UDP port for netdev mode (default 2152)\n"
		"  --list    print the probes of each mode and exit\n"
		"  -v        show libbpf debug output\n");
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

static void on_signal(int sig)
{
	stop_sig = sig;
}

static int attach_mode(enum mode mode, char *only, unsigned port)
{
	int attached = 0;

	for (size_t i = 0; i < NPROBES; i++) {
		struct slot *s = &slots[i];
		char why[1024] = "";
		int err;

		if (probes[i].mode != mode || !selected(&probes[i], only))
			continue;
		s->p = &probes[i];
		err = mode == MODE_FENTRY ? load_fentry(s, why, sizeof(why))
					  : load_netdev(s, port, why, sizeof(why));
		if (err) {
			printf(PROG ": %s: not attached: %s\n", s->p->name, why);
			release(s);
			s->p = NULL;
		} else {
			printf(PROG ": %s: attached\n", s->p->name);
			attached++;
		}
		fflush(stdout);
	}
	return attached;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "only", required_argument, NULL, 'o' },
		{ "port", required_argument, NULL, 'p' },
		{ "list", no_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	enum mode mode = MODE_AUTO;
	char *only = NULL;
	unsigned long port = 2152;
	bool list = false;
	int c, attached;

	while ((c = getopt_long(argc, argv, "m:o:p:lvh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (!strcmp(optarg, "auto"))
				mode = MODE_AUTO;
			else if (!strcmp(optarg, "fentry"))
				mode = MODE_FENTRY;
			else if (!strcmp(optarg, "netdev"))
				mode = MODE_NETDEV;
			else {
				fprintf(stderr, PROG ": --mode must be auto, fentry or netdev, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'o':
			only = optarg;
			break;
		case 'p':
			if (parse_ul("--port", optarg, 1, 65535, &port))
				return 2;
			break;
		case 'l':
			list = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
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
	if (list) {
		list_probes();
		return 0;
	}
	if (only && check_only(only))
		return 2;

	if (!privileged()) {
		fprintf(stderr, PROG ": not privileged: loading BPF tracing programs needs root "
			"(CAP_SYS_ADMIN) or CAP_BPF+CAP_PERFMON\n");
		return 1;
	}

	libbpf_set_print(libbpf_print);

	vmlinux_btf = btf__load_vmlinux_btf();
	if (!access(GTP5G_BTF, F_OK) && vmlinux_btf) {
		gtp5g_btf = btf__load_module_btf("gtp5g", vmlinux_btf);
		if (!gtp5g_btf)
			gtp5g_btf_err = -errno;
	}

	bool was_auto = mode == MODE_AUTO;
	if (mode == MODE_AUTO) {
		if (!access(GTP5G_BTF, F_OK)) {
			printf(PROG ": mode auto: %s exists, using fentry\n", GTP5G_BTF);
			mode = MODE_FENTRY;
		} else {
			printf(PROG ": mode auto: %s absent (gtp5g not loaded), using netdev\n", GTP5G_BTF);
			mode = MODE_NETDEV;
		}
	}

	/* Blocked from here on and only taken in sigsuspend(): a SIGTERM that
	 * arrives during a slow load stays pending instead of killing us with
	 * half the probes attached, and none is lost between check and wait. */
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t term, none;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&term);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGHUP);
	sigprocmask(SIG_BLOCK, &term, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	attached = attach_mode(mode, only, (unsigned)port);
	if (!attached) {
		/* In auto mode gtp5g may be present but unusable (e.g. its
		 * functions inlined); GTP-U on the wire is still visible. */
		if (was_auto && mode == MODE_FENTRY) {
			printf(PROG ": mode auto: no fentry probe attached, falling back to netdev\n");
			mode = MODE_NETDEV;
			attached = attach_mode(mode, only, (unsigned)port);
		}
	}
	fflush(stdout);

	if (!attached) {
		fprintf(stderr, PROG ": no probe attached (mode %s), exiting\n", mode_name(mode));
		btf__free(gtp5g_btf);
		btf__free(vmlinux_btf);
		return 1;
	}

	const char *tp = trace_pipe_path();
	if (!tp)
		fprintf(stderr, PROG ": warning: tracefs not mounted; run: mount -t tracefs nodev /sys/kernel/tracing\n");
	else
		warn_tracing_off();
	printf(PROG ": %d probes attached (mode %s), printing to %s\n", attached, mode_name(mode),
	       tp ? tp : "/sys/kernel/tracing/trace_pipe");
	fflush(stdout);

	sigemptyset(&none);
	while (!stop_sig)
		sigsuspend(&none);

	for (size_t i = 0; i < NPROBES; i++)
		if (slots[i].p)
			release(&slots[i]);
	btf__free(gtp5g_btf);
	btf__free(vmlinux_btf);
	printf(PROG ": detached %d probes (signal %d), exiting\n", attached, (int)stop_sig);
	fflush(stdout);
	return 0;
}
