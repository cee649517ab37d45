// SPDX-License-Identifier: GPL-2.0
/*
 * gtp5g-flood: floods trace_pipe with gtp5g-tracer-format lines for
 * benchmarks. Attaches gtp5g_flood.bpf.c to sys_enter_getppid, filtered to
 * this process, then calls getppid() as fast as possible from N threads for
 * --seconds (0: until SIGINT/SIGTERM) and reports how many calls it made.
 * Each call is one 4-line event (10 with --fentry-lines).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <bpf/libbpf.h>
#include "gtp5g_flood.skel.h"
#include "clock.h"

#define PROG "gtp5g-flood"
#include "cli.h"
#define MAX_THREADS 64

static bool verbose;
static atomic_bool stop;
static atomic_ulong total_calls;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static void *spin(void *arg)
{
	unsigned long n = 0;

	(void)arg;
	/* Raw syscall: glibc does not cache getppid(), but make sure nothing
	 * in between ever does. */
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		syscall(SYS_getppid);
		n++;
	}
	atomic_fetch_add(&total_calls, n);
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [--seconds N=5 (0: until signalled)] [--threads N=1]\n"
		   "       [--name COMM] [--fentry-lines] [-v]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "name", required_argument, NULL, 'n' },
		{ "fentry-lines", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	unsigned long seconds = 5, threads = 1;
	const char *name = NULL;
	bool fentry_lines = false;
	pthread_t tids[MAX_THREADS];
	struct gtp5g_flood *skel;
	int c, err;

	while ((c = getopt_long(argc, argv, "s:t:n:fvh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_ul("--seconds", optarg, 0, 86400, &seconds))
				return 2;
			break;
		case 't':
			if (parse_ul("--threads", optarg, 1, MAX_THREADS, &threads))
				return 2;
			break;
		case 'n':
			name = optarg;
			break;
		case 'f':
			fentry_lines = true;
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
		usage(stderr);
		return 2;
	}
	/* Before the threads: they inherit the comm, which the COMM= lines and
	 * the trace_pipe headers show. */
	if (name && prctl(PR_SET_NAME, name, 0, 0, 0)) {
		fprintf(stderr, PROG ": prctl(PR_SET_NAME): %s\n", strerror(errno));
		return 1;
	}

	libbpf_set_print(libbpf_print);
	skel = gtp5g_flood__open();
	if (!skel) {
		fprintf(stderr, PROG ": open BPF object: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->target_tgid = (unsigned)getpid();
	skel->rodata->emit_fentry = fentry_lines;
	err = gtp5g_flood__load(skel);
	if (!err)
		err = gtp5g_flood__attach(skel);
	if (err) {
		fprintf(stderr, PROG ": load/attach tracepoint syscalls/sys_enter_getppid: %s%s\n",
			strerror(-err), (err == -EPERM || err == -EACCES) ? " (needs root)" : "");
		gtp5g_flood__destroy(skel);
		return 1;
	}

	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);

	printf(PROG ": attached to syscalls/sys_enter_getppid (pid %d), flooding with %lu thread(s) for %s%lu s\n",
	       (int)getpid(), threads, seconds ? "" : "until signalled, max ", seconds ? seconds : 0UL);
	fflush(stdout);

	double t0 = now_s();
	for (unsigned long i = 0; i < threads; i++) {
		err = pthread_create(&tids[i], NULL, spin, NULL);
		if (err) {
			fprintf(stderr, PROG ": pthread_create: %s\n", strerror(err));
			atomic_store(&stop, true);
			threads = i;
			break;
		}
	}

	if (seconds) {
		struct timespec ts = { (time_t)seconds, 0 };
		sigtimedwait(&term, NULL, &ts);
	} else {
		int sig;
		sigwait(&term, &sig);
	}
	atomic_store(&stop, true);
	for (unsigned long i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	double dt = now_s() - t0;

	unsigned long calls = atomic_load(&total_calls);
	unsigned long long hits = skel->bss->hits;
	gtp5g_flood__destroy(skel);

	printf(PROG ": %lu getppid() calls in %.2f s (%.0f/s), %llu events printed (%llu lines)\n",
	       calls, dt, dt > 0 ? calls / dt : 0.0, hits, hits * (fentry_lines ? 10ULL : 4ULL));
	fflush(stdout);
	return 0;
}
