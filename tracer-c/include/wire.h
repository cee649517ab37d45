/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * The wire contract of tracer-c, in one place: the UDP ports and the byte
 * layouts of the GTP-U and RLS headers that the BPF programs match, the
 * loader configures and the traffic generators write. Plain constants, no
 * types, so that BPF code (vmlinux.h) and user space (libc) both include it.
 * Offsets count from the first byte of the UDP payload.
 */
#ifndef GTP5G_WIRE_H
#define GTP5G_WIRE_H

#define UDP_HDR_LEN 8
#define IPV4_HDR_LEN 20 /* without options */
#define IPV6_HDR_LEN 40 /* without extension headers */

/* ---- GTPv1-U (3GPP TS 29.281 5.1): the N3 hop, nr-gnb <-> UPF ---- */
#define GTPU_PORT 2152
/* The mandatory header: flags, message type, length, TEID. */
#define GTPU_HDR_LEN 8
#define GTPU_OFF_FLAGS 0
#define GTPU_OFF_TYPE 1
#define GTPU_OFF_LEN 2  /* be16: the bytes after the mandatory header */
#define GTPU_OFF_TEID 4 /* be32 */
/* Version 1 (top 3 bits) and PT = 1 (GTP, not GTP'); E, S, PN unset. */
#define GTPU_FLAGS_V1 0x30
#define GTPU_VERSION(flags) ((flags) >> 5)
#define GTPU_FLAG_PT 0x10
/* Message types: only the G-PDU carries user data. */
#define GTPU_ECHO_REQUEST 1
#define GTPU_ECHO_RESPONSE 2
#define GTPU_ERROR_INDICATION 26
#define GTPU_END_MARKER 254
#define GTPU_GPDU 255

/* ---- RLS (UERANSIM's radio link simulation): nr-ue <-> nr-gnb ---- */
#define RLS_PORT 4997
/* Every message: magic, version (3 bytes, which receivers do not match),
 * message type, sender id (be64). Heartbeats add 12 bytes (25 in all),
 * acks a count and ids. */
#define RLS_HDR_LEN 13
#define RLS_OFF_MAGIC 0
#define RLS_OFF_VERSION 1
#define RLS_VERSION_LEN 3
#define RLS_OFF_MSG_TYPE 4
#define RLS_OFF_STI 5
#define RLS_MAGIC 3
#define RLS_HEARTBEAT 4
#define RLS_HEARTBEAT_ACK 5
#define RLS_PDU_TRANSMISSION 6
#define RLS_PDU_TRANSMISSION_ACK 7
/* PDU_TRANSMISSION continues with PDU type, PDU id (be32), payload field
 * (be32: the PDU session id for DATA) and PDU length (be32), then the PDU. */
#define RLS_PDU_HDR_LEN 26
#define RLS_OFF_PDU_TYPE 13
#define RLS_OFF_PDU_ID 14
#define RLS_OFF_PAYLOAD 18
#define RLS_OFF_PDU_LEN 22
#define RLS_PDU_RRC 1
#define RLS_PDU_DATA 2

/* For usage texts: "2152", not a retyped number. */
#define WIRE_STR_(x) #x
#define WIRE_STR(x) WIRE_STR_(x)

#endif
