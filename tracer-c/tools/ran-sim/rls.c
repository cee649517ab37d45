// SPDX-License-Identifier: GPL-2.0
/* RLS messages as UERANSIM writes them (layout: wire.h). */
#include "ran-sim.h"

/* What the real UE puts in the version bytes; receivers must not match on it. */
static const uint8_t rls_version[RLS_VERSION_LEN] = { 3, 2, 6 };

size_t rls_header(uint8_t *p, uint8_t type, uint64_t sti)
{
	p[RLS_OFF_MAGIC] = RLS_MAGIC;
	memcpy(p + RLS_OFF_VERSION, rls_version, sizeof(rls_version));
	p[RLS_OFF_MSG_TYPE] = type;
	put_be64(p + RLS_OFF_STI, sti);
	return RLS_HDR_LEN;
}

size_t rls_pdu(uint8_t *p, uint64_t sti, uint8_t pdu_type, uint32_t pdu_id, uint32_t payload,
	       const uint8_t *pdu, uint32_t len)
{
	rls_header(p, RLS_PDU_TRANSMISSION, sti);
	p[RLS_OFF_PDU_TYPE] = pdu_type;
	put_be32(p + RLS_OFF_PDU_ID, pdu_id);
	put_be32(p + RLS_OFF_PAYLOAD, payload);
	put_be32(p + RLS_OFF_PDU_LEN, len);
	memcpy(p + RLS_PDU_HDR_LEN, pdu, len);
	return RLS_PDU_HDR_LEN + len;
}

bool rls_parse(const uint8_t *p, size_t n, struct rls_msg *m)
{
	if (n < RLS_HDR_LEN || p[RLS_OFF_MAGIC] != RLS_MAGIC)
		return false;
	m->type = p[RLS_OFF_MSG_TYPE];
	m->sti = get_be64(p + RLS_OFF_STI);
	if (m->type != RLS_PDU_TRANSMISSION)
		return true;
	if (n < RLS_PDU_HDR_LEN)
		return false;
	m->pdu_type = p[RLS_OFF_PDU_TYPE];
	m->pdu_id = get_be32(p + RLS_OFF_PDU_ID);
	m->payload = get_be32(p + RLS_OFF_PAYLOAD);
	m->len = get_be32(p + RLS_OFF_PDU_LEN);
	m->pdu = p + RLS_PDU_HDR_LEN;
	return m->len <= n - RLS_PDU_HDR_LEN;
}
