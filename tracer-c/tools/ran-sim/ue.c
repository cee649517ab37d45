// SPDX-License-Identifier: GPL-2.0
/*
 * An nr-ue process. It never touches GTP-U: its TUN reader thread sends the
 * uplink as RLS DATA PDUs, its control thread a heartbeat a second, its RLS
 * thread receives the downlink, heartbeat acks, PDU acks and RRC.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include "ran-sim.h"

#define HEARTBEAT_MS 1000
#define WINDOW_STALL_MS 20 /* --rate 0: a window this long without replies was lost */
#define ICMP_TIME_OFF 8 /* the send time, after the ICMP header */

struct ue {
	struct crew crew;
	unsigned index;
	bool idle;
	unsigned rate, window, warmup_s;
	/* Replies to pings sent before this (CLOCK_MONOTONIC ns) are not
	 * timed: --warmup. */
	uint64_t rtt_from_ns;
	int fd;
	uint64_t sti;
	struct addr gnb;
	struct ue_counts *n;
	/* --rate 0: replies outstanding, so the loop is clocked by the
	 * round trip instead of overflowing socket buffers. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned outstanding;
};


/* An IPv4 ICMP echo request from the UE's address 10.45.0.(1+ue) to
 * 192.0.2.1 (TEST-NET-1), as `ping` would write it into uesimtun0: the
 * data starts with the send time (CLOCK_MONOTONIC ns, big-endian), which
 * the echo brings back for the round-trip time. */
static void ping_request(uint8_t *ip, unsigned ue, uint16_t seq, uint64_t sent_ns)
{
	static const uint8_t dn[4] = { 192, 0, 2, 1 };
	const uint8_t ue_addr[4] = { 10, 45, (uint8_t)((1 + ue) >> 8), (uint8_t)(1 + ue) };
	uint8_t *icmp = ip + IPV4_HDR_LEN;

	memset(ip, 0, INNER_LEN);
	ipv4_header(ip, INNER_LEN, IPPROTO_ICMP, ue_addr, dn);
	icmp[0] = 8;
	icmp[4] = (uint8_t)(ue >> 8);
	icmp[5] = (uint8_t)ue;
	put_be16(icmp + 6, seq);
	put_be64(icmp + ICMP_TIME_OFF, sent_ns);
	for (unsigned i = ICMP_TIME_OFF + 8; i < INNER_LEN - IPV4_HDR_LEN; i++)
		icmp[i] = (uint8_t)i;
	put_be16(icmp + 2, inet_checksum(icmp, INNER_LEN - IPV4_HDR_LEN));
}


/* The round trip of an echo reply to this UE's ping, if it is one. */
static void ue_time_reply(struct ue *u, const struct rls_msg *m)
{
	const uint8_t *icmp = m->pdu + IPV4_HDR_LEN;
	uint64_t sent, now = now_ns();

	if (m->len < IPV4_HDR_LEN + ICMP_TIME_OFF + 8 || (m->pdu[0] >> 4) != 4 ||
	    m->pdu[9] != IPPROTO_ICMP || icmp[0] != 0 || (unsigned)((icmp[4] << 8) | icmp[5]) != u->index)
		return;
	sent = get_be64(icmp + ICMP_TIME_OFF);
	if (sent >= u->rtt_from_ns && sent <= now)
		rtt_record(&u->n->rtt, now - sent);
}

static void ue_data_received(struct ue *u, const struct rls_msg *m)
{
	count(&u->n->data_received);
	ue_time_reply(u, m);
	if (u->rate)
		return;
	pthread_mutex_lock(&u->mu);
	if (u->outstanding)
		u->outstanding--;
	pthread_cond_signal(&u->cv);
	pthread_mutex_unlock(&u->mu);
}

/* RLS UDP task: downlink data, heartbeat acks, PDU acks, RRC. */
static void *ue_rls_thread(void *arg)
{
	struct ue *u = arg;
	uint8_t buf[MAX_PKT];
	struct addr from;
	struct rls_msg m;

	crew_register(&u->crew);
	u->rtt_from_ns = now_ns() + u->warmup_s * 1000000000ULL;
	while (!crew_stopping(&u->crew)) {
		size_t n = receive(u->fd, buf, sizeof(buf), &from);

		if (!n || !rls_parse(buf, n, &m))
			continue;
		if (m.type == RLS_HEARTBEAT_ACK)
			count(&u->n->heartbeat_acks);
		else if (m.type == RLS_PDU_TRANSMISSION_ACK)
			count(&u->n->pdu_acks);
		else if (m.type == RLS_PDU_TRANSMISSION && m.pdu_type == RLS_PDU_RRC)
			count(&u->n->rrc_received);
		else if (m.type == RLS_PDU_TRANSMISSION && m.pdu_type == RLS_PDU_DATA)
			ue_data_received(u, &m);
	}
	return NULL;
}

/* Control task: a heartbeat a second with the simulated position. */
static void *ue_control(void *arg)
{
	struct ue *u = arg;
	uint8_t msg[RLS_HDR_LEN + 12] = { 0 };
	struct timespec next;

	crew_register(&u->crew);
	rls_header(msg, RLS_HEARTBEAT, u->sti);
	clock_gettime(CLOCK_MONOTONIC, &next);
	do {
		send_to(u->fd, msg, sizeof(msg), &u->gnb, "nr-ue heartbeat");
		count(&u->n->heartbeats_sent);
		add_ns(&next, HEARTBEAT_MS * 1000000L);
	} while (crew_sleep_until(&u->crew, &next));
	return NULL;
}

/* --rate 0: waits for room in the window; false on stop. */
static bool ue_window_room(struct ue *u)
{
	struct timespec stall = after_ms(WINDOW_STALL_MS);
	bool ok;

	pthread_mutex_lock(&u->mu);
	while (u->outstanding >= u->window && !crew_stopping(&u->crew)) {
		if (pthread_cond_timedwait(&u->cv, &u->mu, &stall) == ETIMEDOUT)
			u->outstanding = 0; /* lost on the way: start a new window */
	}
	u->outstanding++;
	ok = !crew_stopping(&u->crew);
	pthread_mutex_unlock(&u->mu);
	return ok;
}

/* TUN reader stand-in: the pings the UE's applications send, as RLS
 * DATA PDUs of PDU session PSI. */
static void *ue_uplink(void *arg)
{
	struct ue *u = arg;
	uint8_t ip[INNER_LEN], pkt[RLS_PDU_HDR_LEN + INNER_LEN];
	struct timespec next;
	uint32_t pdu_id = 0;

	crew_register(&u->crew);
	if (u->idle) {
		/* No PDU session: the thread exists (as in a real UE), but
		 * nothing reaches the TUN device. */
		crew_wait_stop(&u->crew);
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		if (u->rate ? !crew_sleep_until(&u->crew, &next) : !ue_window_room(u))
			break;
		ping_request(ip, u->index, (uint16_t)++pdu_id, now_ns());
		size_t len = rls_pdu(pkt, u->sti, RLS_PDU_DATA, pdu_id, PSI, ip, INNER_LEN);
		send_to(u->fd, pkt, len, &u->gnb, "nr-ue uplink");
		count(&u->n->data_sent);
		if (u->rate)
			add_ns(&next, 1000000000L / u->rate);
	}
	return NULL;
}

int ue_main(struct run *r, unsigned index, bool idle)
{
	static struct ue u;
	void *(*fns[])(void *) = { ue_rls_thread, ue_uplink, ue_control };
	pthread_condattr_t a;

	u.index = index;
	u.idle = idle;
	u.rate = r->o.rate;
	u.window = r->o.window;
	u.warmup_s = r->o.warmup_s;
	u.gnb = r->gnb_rls;
	u.n = &r->counts->ue[index];
	u.sti = ((uint64_t)getpid() << 32) ^ (0x75650000ULL + index);
	pthread_mutex_init(&u.mu, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&u.cv, &a);
	crew_init(&u.crew);
	/* Unbound, like the real UE: the kernel picks the port at the first
	 * heartbeat. */
	u.fd = udp_socket(r->gnb_rls.sa.ss_family, NULL, "nr-ue RLS");
	if (u.fd < 0)
		return 1;
	return run_crew(r, &u.crew, fns, 3, &u, "ue", &u);
}


void ue_describe(FILE *f, const struct ue *u)
{
	fprintf(f, "\"ue\":%u,\"idle\":%s,\"sti\":\"0x%016llx\",", u->index,
		u->idle ? "true" : "false", (unsigned long long)u->sti);
}
