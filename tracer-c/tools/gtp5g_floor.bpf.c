// SPDX-License-Identifier: GPL-2.0
/*
 * The overhead benchmark's floor: empty programs on the hooks the tracer's
 * default mode uses, the one a sender-side tracer needs (net_dev_queue) and
 * its de-duplication's context-switch hook. What bpf_stats reports for them
 * is the price of any program there (dispatch, and bpf_stats's own clock
 * reads), so the tracer's cost is measured over it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* First, so that net_dev_queue, which the benchmark waits for, attaches last. */
SEC("tp_btf/sched_switch")
int BPF_PROG(floor_sched_switch)
{
	return 0;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(floor_net_dev_queue, struct sk_buff *skb)
{
	return 0;
}
