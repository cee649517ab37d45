/* SPDX-License-Identifier: GPL-2.0 */
/* De-duplication shared by the tracer's two modes (netdev, fentry); not by
 * the flood benchmark, which must print every call. */
#ifndef GTP5G_DEDUP_BPF_H
#define GTP5G_DEDUP_BPF_H

#include "gtp5g_common.bpf.h"
#include "gtp5g_dedup.h"

/*
 * De-duplication. The operator only needs to learn, about once per refresh
 * period, that a thread is on the user-plane path; printing every packet
 * costs trace_pipe bandwidth and about half the sender's packet rate. So a
 * thread's event is printed when the thread is first seen and then at most
 * once per refresh period; the rest is only counted. Set by the loader before
 * load (rodata), so the verifier prunes the unused branch.
 */
const volatile bool every_event = false;

/* The kernel's CONFIG_HZ, which the loader reads from its config; 0 when
 * unknown. (Not a libbpf __kconfig extern: libbpf then refuses to load at
 * all where no kernel config file exists, as in most containers.) */
const volatile __u32 kernel_hz = 0;

/* The clock de-duplication runs on: jiffies when HZ is known (a plain load;
 * bpf_ktime_get_ns() costs about 70 ns a call in a VM, half of what the
 * whole program costs otherwise), else nanoseconds. */
static __always_inline __u64 dedup_now(void)
{
	return kernel_hz ? bpf_jiffies64() : bpf_ktime_get_ns();
}

/* The refresh period in dedup_now() units, worked out by the loader: the
 * verifier does not fold arithmetic on rodata, so computing it here would
 * cost a 64-bit divide per packet. */
const volatile __u64 dedup_period = 1000000000ULL;

/* Thread id -> dedup_now() of its last printed event. LRU, so a
 * thread that is gone makes room for a new one without any cleanup; the
 * loader sets the size (--map-size). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} last_printed SEC(".maps");

/* One per CPU (no atomics): the counts the loader sums, and the thread
 * that last had an event on this CPU with the time of its last print, so
 * that a thread sending a burst is suppressed without a hash lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dedup_cpu);
} per_cpu SEC(".maps");

/* Whether tid printed on this CPU less than a period before now. The
 * cached time is always that of a real print, so the cache can only
 * suppress what the LRU map would. */
static __always_inline bool cached(const struct dedup_cpu *c, __u32 tid, __u64 now)
{
	return tid == c->tid && now - c->last < dedup_period;
}

/* The per-CPU cache alone, before anything else is looked at. The thread
 * is told by its task pointer: bpf_get_current_task() is the cheapest way
 * to it (about 8 ns on the development host, against 30 for
 * bpf_get_current_pid_tgid() with the kernel's return-thunk mitigations);
 * the lookup and jiffies are inlined. A thread that exits and whose
 * task_struct a new thread reuses within the period on this CPU is printed
 * one period late. A hit counts as suppressed. */
static __always_inline bool printed_recently(void)
{
	__u32 zero = 0;
	struct dedup_cpu *c = bpf_map_lookup_elem(&per_cpu, &zero);

	if (!c || c->task != bpf_get_current_task() || dedup_now() - c->last >= dedup_period)
		return false;
	c->suppressed++;
	return true;
}

/* Whether the current thread's event is to be printed now; called before
 * any formatting, so that a suppressed event costs the per-CPU cache and,
 * when that misses, one LRU lookup. A failed update of the LRU map prints
 * rather than loses the thread. */
static __always_inline bool should_print(void)
{
	__u32 zero = 0, tid;
	__u64 now, *last;
	struct dedup_cpu *c = bpf_map_lookup_elem(&per_cpu, &zero);

	if (!c)
		return true;
	if (every_event) {
		c->printed++;
		return true;
	}
	tid = (__u32)bpf_get_current_pid_tgid();
	now = dedup_now();
	if (cached(c, tid, now)) {
		c->suppressed++;
		return false;
	}
	c->tid = tid;
	c->task = bpf_get_current_task();
	last = bpf_map_lookup_elem(&last_printed, &tid);
	if (last && now - *last < dedup_period) {
		c->last = *last;
		c->suppressed++;
		return false;
	}
	if (last)
		*last = now;
	else
		bpf_map_update_elem(&last_printed, &tid, &now, BPF_ANY);
	c->last = now;
	c->printed++;
	return true;
}

#endif
