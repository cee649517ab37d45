/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* The per-CPU de-duplication state: written by the BPF programs
 * (gtp5g_dedup.bpf.h), its counts read by the loader (gtp5g-tracer.c). */
#ifndef GTP5G_DEDUP_H
#define GTP5G_DEDUP_H

struct dedup_cpu {
	__u64 printed;
	__u64 suppressed;
	__u64 last; /* dedup_now() of tid's last print */
	__u64 task; /* tid's task_struct, for the check without a helper call */
	__u32 tid;
	__u32 pad;
};

#endif
