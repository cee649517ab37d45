// SPDX-License-Identifier: GPL-2.0
/* GTP-U G-PDUs, the gNB <-> UPF hop (layout: wire.h). */
#include "ran-sim.h"

size_t gtpu_gpdu(uint8_t *p, uint32_t teid, const uint8_t *inner, size_t len)
{
	gtpu_header(p, teid, (uint16_t)len);
	memcpy(p + GTPU_HDR_LEN, inner, len);
	return GTPU_HDR_LEN + len;
}

/* A G-PDU; a sequence number flag (S) is tolerated, other types are not. */
bool gtpu_parse(const uint8_t *p, size_t n, uint32_t *teid, size_t *len)
{
	if (n < GTPU_HDR_LEN || (p[GTPU_OFF_FLAGS] & 0xf7) != GTPU_FLAGS_V1 ||
	    p[GTPU_OFF_TYPE] != GTPU_GPDU)
		return false;
	*teid = get_be32(p + GTPU_OFF_TEID);
	*len = ((size_t)p[GTPU_OFF_LEN] << 8) | p[GTPU_OFF_LEN + 1];
	return *len <= n - GTPU_HDR_LEN;
}
