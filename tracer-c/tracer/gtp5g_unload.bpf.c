// SPDX-License-Identifier: GPL-2.0
/*
 * Tells the loader that someone is unloading gtp5g (rmmod, modprobe -r).
 *
 * An attached fentry program holds a reference on the module it traces, so
 * while the tracer runs, delete_module("gtp5g") fails with "in use". This
 * program sees the attempt at syscall entry and wakes the loader, which lets
 * go of its gtp5g probes at once: `modprobe -r --wait MSEC gtp5g` (which
 * retries) then succeeds, and the probes come back when gtp5g is loaded
 * again. The attempt itself cannot be held until the loader lets go: the
 * first try of a plain rmmod fails, a second one works.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} unload_attempts SEC(".maps");

/* "gtp5g" and its NUL: a longer name that starts the same is another module. */
#define NAME_LEN 6

static __always_inline bool is_gtp5g(const char *name)
{
	const char want[NAME_LEN] = "gtp5g";

	for (int i = 0; i < NAME_LEN; i++)
		if (name[i] != want[i])
			return false;
	return true;
}

SEC("tp/syscalls/sys_enter_delete_module")
int gtp5g_unload_attempt(struct trace_event_raw_sys_enter *ctx)
{
	char name[NAME_LEN + 1] = {};
	__u32 *pid;

	if (bpf_probe_read_user_str(name, sizeof(name), (const void *)ctx->args[0]) != NAME_LEN ||
	    !is_gtp5g(name))
		return 0;
	pid = bpf_ringbuf_reserve(&unload_attempts, sizeof(*pid), 0);
	if (!pid)
		return 0;
	*pid = bpf_get_current_pid_tgid() >> 32;
	bpf_ringbuf_submit(pid, 0);
	return 0;
}
