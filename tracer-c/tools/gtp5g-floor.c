// SPDX-License-Identifier: GPL-2.0
/*
 * gtp5g-floor: attaches gtp5g_floor.bpf.c (empty tp_btf/net_dev_queue and
 * tp_btf/sched_switch programs) until SIGINT/SIGTERM, for
 * scripts/bench-overhead.sh, which finds them, and their bpf_stats, as
 * floor_* in `bpftool prog show` and knows they attached when `bpftool link
 * show` lists a link to floor_net_dev_queue (attached last).
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
		fprintf(stderr, PROG ": load/attach tp_btf/net_dev_queue and sched_switch: %s%s\n", strerror(-err),
			(err == -EPERM || err == -EACCES) ? " (needs root)" : "");
		gtp5g_floor__destroy(skel);
		return 1;
	}
	sigwait(&term, &sig);
	gtp5g_floor__destroy(skel);
	return 0;
}
