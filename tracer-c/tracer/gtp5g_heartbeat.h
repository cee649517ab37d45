/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* The heartbeat line, shared by its BPF program (gtp5g_heartbeat.bpf.c) and
 * the loader's trace_marker fallback (gtp5g-tracer.c). Its text is a contract
 * with the daemon's parser (src/parse/heartbeat.rs; tracer-c/README.md). */
#ifndef GTP5G_HEARTBEAT_H
#define GTP5G_HEARTBEAT_H

#define HEARTBEAT_PREFIX "gtp5g-tracer heartbeat: "
#define HEARTBEAT_FORMAT HEARTBEAT_PREFIX "pid=%u interval_s=%u"

#endif
