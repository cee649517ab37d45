// SPDX-License-Identifier: GPL-2.0
/*
 * The overhead benchmark's floor: an empty program on the one hook a
 * sender-side tracer needs. What bpf_stats reports for it is the price of
 * any program there (dispatch, and bpf_stats's own clock reads), so the
 * tracer's cost is measured over it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/net_dev_queue")
int BPF_PROG(floor_net_dev_queue, struct sk_buff *skb)
{
	return 0;
}
