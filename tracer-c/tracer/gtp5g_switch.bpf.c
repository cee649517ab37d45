// SPDX-License-Identifier: GPL-2.0
/*
 * Tells the de-duplication's per-CPU cache that the running thread changed.
 *
 * The cache answers "is this the thread this CPU last decided about?" on
 * every packet. Asking the kernel who is running costs a helper call, and on
 * a kernel with return-thunk mitigations (e.g. SRSO's safe RET on AMD) a call
 * is most of what a suppressed packet costs. But the running thread changes
 * only at a context switch, so this program forgets the cached answer there:
 * the packet path then needs no call at all. Context switches are far rarer
 * than packets on a loaded user plane, so the cost moves to where it is
 * paid least often. Loaded first and attached before any packet program, it
 * also creates the maps every other object shares.
 */
#include "gtp5g_dedup.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sched_switch")
int BPF_PROG(gtp5g_sched_switch)
{
	forget_thread();
	return 0;
}
