/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* The per-CPU de-duplication state: written by the BPF programs
 * (gtp5g_dedup.bpf.h), its counts read by the loader (gtp5g-tracer.c). */
#ifndef GTP5G_DEDUP_H
#define GTP5G_DEDUP_H

struct dedup_cpu {
	__u64 printed;
	__u64 suppressed; /* by the LRU map or the tid check */
	__u64 cache_hits; /* suppressed by printed_recently() alone */
	__u64 last; /* dedup_now() of tid's last print */
	__u64 stack; /* tid's kernel stack (task->stack), 0 if unknown */
	__u64 here; /* scratch: a context's address (ctx_addr()) */
	__u32 tid;
	__u32 pad;
};

#endif
