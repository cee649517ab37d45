// SPDX-License-Identifier: GPL-2.0
/*
 * trace_pipe flood for benchmarks: every getppid() of the configured process
 * prints one event in the netdev tracer's format (and optionally a burst of
 * fentry-format lines), so the operator's parser can be driven at the
 * kernel's maximum bpf_printk rate without any network traffic.
 * getppid() is used because it is the cheapest syscall nothing else in the
 * benchmark process calls.
 */
#include "gtp5g_common.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;
const volatile bool emit_fentry = false;

__u64 hits = 0;

SEC("tracepoint/syscalls/sys_enter_getppid")
int flood_getppid(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 n;

	if (CUR_TGID(id) != (int)target_tgid)
		return 0;
	n = __sync_fetch_and_add(&hits, 1);

	bpf_printk("tp/net_dev_queue: DEV=lo, LEN=70");
	/* Vary the TEID so the parser cannot short-cut identical lines. */
	bpf_printk("tp/net_dev_queue: TEID=0x%x, TYPE=255", 0x1000 + (__u32)(n & 0xff));
	EMIT_PID_TGID_CPU("tp/net_dev_queue");
	EMIT_COMM("tp/net_dev_queue");

	if (emit_fentry) {
		bpf_printk("fentry/gtp5g_encap_recv: DEV=n3");
		bpf_printk("fentry/gtp5g_encap_recv: GTP packet detected (len >= 8)");
		EMIT_PID_TGID_CPU("fentry/gtp5g_encap_recv");
		bpf_printk("fentry/gtp5g_encap_recv: LEN=%u", 120);
		EMIT_COMM("fentry/gtp5g_encap_recv");
		bpf_printk("fexit/pdr_find_by_gtp1u: PID=%d, PDR=Found", CUR_PID(id));
	}
	return 0;
}
