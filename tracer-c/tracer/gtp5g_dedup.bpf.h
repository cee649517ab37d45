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

/*
 * Which thread is running, told without a helper call. A helper call is
 * most of what a suppressed packet costs where the kernel's return thunks
 * mitigate SRSO (about 8 ns a call on the development host), yet the
 * thread only changes at a context switch. Every thread runs on a kernel
 * stack of its own, and a program's context lies on the stack it runs on:
 * tp_btf's argument array is in the tracepoint's frame, fentry's in the
 * trampoline's. So "the context lies within the kernel stack of the thread
 * this CPU last decided about" means "that thread is running". (The BPF
 * frame pointer would not do: from 6.13 a program with a large frame runs
 * on a per-CPU stack of its own.)
 *
 * The window is the smallest kernel stack (THREAD_SIZE) of the
 * architectures built for; a larger real stack (KASAN's) only makes the
 * check miss, never match another thread, as the window starts at the
 * thread's own task->stack. A softirq on the interrupt stack misses and
 * takes the full path. A thread that exits and whose stack a new thread
 * reuses within the period on this CPU is printed one period late.
 */
#if defined(__TARGET_ARCH_x86) || defined(__TARGET_ARCH_arm64)
#define STACK_WINDOW 16384ULL
#else
#define STACK_WINDOW 0ULL /* unknown: the check always misses */
#endif

/* The context's address as a number: the verifier allows no arithmetic on
 * a context pointer, but (CAP_PERFMON) lets it pass through memory. A
 * program of an interrupt nesting between the store and the load leaves
 * its own context there, on the interrupt's stack or on this same thread's:
 * the check can then only miss, or still be right. */
static __always_inline __u64 ctx_addr(struct dedup_cpu *c, void *ctx)
{
	*(volatile __u64 *)&c->here = (__u64)ctx;
	return *(volatile __u64 *)&c->here;
}

/* The per-CPU cache alone, before anything else is looked at: no call, no
 * hash lookup (the map lookup and jiffies are inlined). The cached time is
 * always that of a real print, so the cache can only suppress what the LRU
 * map would. A hit is counted apart (cache_hits), as suppressed. */
static __always_inline bool printed_recently(void *ctx)
{
	__u32 zero = 0;
	struct dedup_cpu *c = bpf_map_lookup_elem(&per_cpu, &zero);

	if (!c || ctx_addr(c, ctx) - c->stack >= STACK_WINDOW ||
	    dedup_now() - c->last >= dedup_period)
		return false;
	c->cache_hits++;
	return true;
}

/* The running thread's kernel stack, or 0 when ctx is not on it (a softirq
 * on the interrupt stack), which printed_recently() never matches. */
static __always_inline __u64 running_stack(struct dedup_cpu *c, void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 base = (__u64)BPF_CORE_READ(task, stack);

	return ctx_addr(c, ctx) - base < STACK_WINDOW ? base : 0;
}

/* Whether the current thread's event is to be printed now; called before
 * any formatting, so that a suppressed event costs the per-CPU cache and,
 * when that misses, one LRU lookup. A failed update of the LRU map prints
 * rather than loses the thread. */
static __always_inline bool should_print(void *ctx)
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
	c->stack = running_stack(c, ctx);
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
