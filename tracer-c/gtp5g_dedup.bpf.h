/* SPDX-License-Identifier: GPL-2.0 */
/* De-duplication shared by the tracer's two modes (netdev, fentry); not by
 * the flood benchmark, which must print every call. */
#ifndef GTP5G_DEDUP_BPF_H
#define GTP5G_DEDUP_BPF_H

#include "gtp5g_common.bpf.h"

/*
 * De-duplication. The operator only needs to learn, about once per refresh
 * period, that a thread is on the user-plane path; printing every packet
 * costs trace_pipe bandwidth and about half the sender's packet rate. So a
 * thread's event is printed when the thread is first seen and then at most
 * once per refresh_ns; the rest is only counted. Set by the loader before
 * load (rodata), so the verifier prunes the unused branch.
 */
const volatile bool every_event = false;
const volatile __u64 refresh_ns = 1000000000ULL;

/* Thread id -> bpf_ktime_get_ns() of its last printed event. LRU, so a
 * thread that is gone makes room for a new one without any cleanup; the
 * loader sets the size (--map-size). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} last_printed SEC(".maps");

enum { COUNT_PRINTED, COUNT_SUPPRESSED, COUNT_N };

/* Per CPU so that counting needs no atomic; the loader sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNT_N);
	__type(key, __u32);
	__type(value, __u64);
} event_counts SEC(".maps");

static __always_inline void count_event(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&event_counts, &which);

	if (n)
		*n += 1;
}

/* Whether the current thread's event is to be printed now; called before
 * any formatting so that a suppressed event costs one lookup and a compare.
 * A failed update (map full of entries being updated right now) prints
 * rather than loses the thread. */
static __always_inline bool should_print(void)
{
	__u32 tid;
	__u64 now, *last;

	if (every_event) {
		count_event(COUNT_PRINTED);
		return true;
	}
	tid = (__u32)bpf_get_current_pid_tgid();
	now = bpf_ktime_get_ns();
	last = bpf_map_lookup_elem(&last_printed, &tid);
	if (last && now - *last < refresh_ns) {
		count_event(COUNT_SUPPRESSED);
		return false;
	}
	if (last)
		*last = now;
	else
		bpf_map_update_elem(&last_printed, &tid, &now, BPF_ANY);
	count_event(COUNT_PRINTED);
	return true;
}

#endif
