// SPDX-License-Identifier: GPL-2.0
/*
 * The tracer's heartbeat, printed where every other tracer line goes.
 *
 * Attached to nothing: the loader runs it every heartbeat period with
 * BPF_PROG_TEST_RUN, so no packet ever pays for it, and it needs only the
 * bpf() syscall the loader already uses, not a writable trace_marker (a
 * sandboxed tracer's /sys is read-only). Its bpf_printk line reaches the
 * global trace_pipe and every tracing instance that records
 * bpf_trace/bpf_trace_printk, as the probes' lines do.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "gtp5g_heartbeat.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load. */
const volatile __u32 tracer_pid;
const volatile __u32 interval_s;

/* A raw tracepoint program: the oldest tracing type that can be test-run
 * (Linux 5.10). No target: it is loaded, never attached. */
SEC("raw_tp")
int gtp5g_heartbeat(void *ctx)
{
	bpf_printk(HEARTBEAT_FORMAT, tracer_pid, interval_s);
	return 0;
}
