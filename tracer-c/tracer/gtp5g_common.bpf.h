/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by the tracer's BPF programs. Every event ends with a COMM line so
 * that the operator can name the task even when the kernel's comm cache
 * prints "<...>" in the trace_pipe header. */
#ifndef GTP5G_COMMON_BPF_H
#define GTP5G_COMMON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

/* bpf_get_current_pid_tgid(): the kernel's "pid" is the thread id (low half),
 * its "tgid" the process id (high half). */
#define CUR_PID(id)  ((int)((__u32)(id)))
#define CUR_TGID(id) ((int)((id) >> 32))

/* "<prefix>: PID=%d, TGID=%d, CPU=%d" */
#define EMIT_PID_TGID_CPU(prefix)                                             \
	do {                                                                  \
		__u64 __id = bpf_get_current_pid_tgid();                      \
		bpf_printk(prefix ": PID=%d, TGID=%d, CPU=%d", CUR_PID(__id),  \
			   CUR_TGID(__id), (int)bpf_get_smp_processor_id());  \
	} while (0)

#define EMIT_COMM(prefix)                                                     \
	do {                                                                  \
		char __comm[TASK_COMM_LEN_] = {};                             \
		bpf_get_current_comm(__comm, sizeof(__comm));                 \
		bpf_printk(prefix ": COMM=%s", __comm);                       \
	} while (0)

/* TASK_COMM_LEN is a #define in the kernel, so vmlinux.h does not carry it. */
#define TASK_COMM_LEN_ 16

#endif
