// SPDX-License-Identifier: GPL-2.0
/* The UPF stand-in: a thread of the parent process (comm ran-sim, never a
 * target) that answers each uplink ping as the data network would. */
#include <netinet/in.h>

#include "ran-sim.h"

/* What the data network answers: addresses swapped, echo reply. */
static bool ping_reply(uint8_t *ip, size_t len)
{
	uint8_t tmp[4];

	if (len < IPV4_HDR_LEN + 8 || (ip[0] >> 4) != 4 || ip[9] != IPPROTO_ICMP || ip[20] != 8)
		return false;
	memcpy(tmp, ip + 12, 4);
	memcpy(ip + 12, ip + 16, 4);
	memcpy(ip + 16, tmp, 4);
	ip[20] = 0;
	ip[22] = ip[23] = 0;
	put_be16(ip + 22, inet_checksum(ip + IPV4_HDR_LEN, len - IPV4_HDR_LEN));
	return true;
}

/* Echoes every uplink G-PDU back on the downlink TEID. */
void *upf_thread(void *arg)
{
	struct upf *u = arg;
	uint8_t buf[GTPU_HDR_LEN + MAX_PKT];
	struct addr from;

	crew_register(&u->crew);
	while (!crew_stopping(&u->crew)) {
		size_t n = receive(u->fd, buf, sizeof(buf), &from), len;
		uint32_t teid;

		if (!n || !gtpu_parse(buf, n, &teid, &len) || teid - TEID_UL_BASE >= MAX_UES ||
		    !ping_reply(buf + GTPU_HDR_LEN, len))
			continue;
		put_be32(buf + 4, teid - TEID_UL_BASE + TEID_DL_BASE);
		send_to(u->fd, buf, GTPU_HDR_LEN + len, &from, "UPF");
		count(u->echoed);
	}
	return NULL;
}
