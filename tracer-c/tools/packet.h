/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packet building shared by the user-space traffic generators (ran-sim,
 * gtpu-traffic): big-endian fields, the Internet checksum, an
 * IPv4 header and the GTP-U G-PDU header, laid out as ../include/wire.h
 * says, which is what the tracer matches.
 */
#ifndef GTP5G_PACKET_H
#define GTP5G_PACKET_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wire.h"

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

/* RFC 1071, an odd trailing byte padded with zero. */
static inline uint16_t inet_checksum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (p[i] << 8) | p[i + 1];
	if (n & 1)
		sum += p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* An option-less IPv4 header, TTL 64, checksum filled in; the payload
 * (total_len - 20 bytes) is the caller's. */
static inline void ipv4_header(uint8_t *ip, uint16_t total_len, uint8_t proto,
			       const uint8_t src[4], const uint8_t dst[4])
{
	memset(ip, 0, IPV4_HDR_LEN);
	ip[0] = 0x45;
	put_be16(ip + 2, total_len);
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	put_be16(ip + 10, inet_checksum(ip, IPV4_HDR_LEN));
}

/* GTPv1-U: version 1, PT=1, no optional fields, type G-PDU; the length
 * counts the bytes after the mandatory 8-byte header. */
static inline void gtpu_header(uint8_t *p, uint32_t teid, uint16_t payload_len)
{
	p[GTPU_OFF_FLAGS] = GTPU_FLAGS_V1;
	p[GTPU_OFF_TYPE] = GTPU_GPDU;
	put_be16(p + GTPU_OFF_LEN, payload_len);
	put_be32(p + GTPU_OFF_TEID, teid);
}

#endif
