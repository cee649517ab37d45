// SPDX-License-Identifier: GPL-2.0
/*
 * gtp5g-floor: attaches gtp5g_floor.bpf.c (an empty tp_btf/net_dev_queue
 * program) until SIGINT/SIGTERM, for scripts/bench-overhead.sh, which finds
 * it, and its bpf_stats, as floor_net_dev_queue in `bpftool prog show` and
 * knows it attached when `bpftool link show` lists a link to it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <bpf/libbpf.h>
#include "gtp5g_floor.skel.h"

#define PROG "gtp5g-floor"

int main(int argc, char **argv)
{
	struct gtp5g_floor *skel;
	sigset_t term;
	int err, sig;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: " PROG " (attached until SIGINT/SIGTERM)\n");
		return 2;
	}
	sigemptyset(&term);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	skel = gtp5g_floor__open_and_load();
	err = skel ? gtp5g_floor__attach(skel) : -errno;
	if (err) {
		fprintf(stderr, PROG ": load/attach tp_btf/net_dev_queue: %s%s\n", strerror(-err),
			(err == -EPERM || err == -EACCES) ? " (needs root)" : "");
		gtp5g_floor__destroy(skel);
		return 1;
	}
	sigwait(&term, &sig);
	gtp5g_floor__destroy(skel);
	return 0;
}
