// SPDX-License-Identifier: GPL-2.0
/*
 * The nr-gnb process: its RLS thread acks heartbeats and hands DATA to the
 * GTP task thread, which sends it as a GTP-U G-PDU to the UPF; the GTP
 * server thread receives the downlink and hands it back to the GTP task,
 * which sends it to the UE over RLS; the control thread acks DATA PDUs and
 * broadcasts RRC.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "ran-sim.h"

#define MAX_PENDING_ACKS 64
#define ACK_PERIOD_MS 100
#define RRC_PERIOD_MS 10000

struct gnb_ue {
	bool known;
	uint64_t sti;
	struct addr addr;
	uint32_t pending_acks[MAX_PENDING_ACKS];
	unsigned npending;
};

/* A hand-off between the gNB's threads, as UERANSIM's task queues. */
struct hop {
	uint8_t uplink;
	uint8_t slot;
	uint16_t len;
	uint8_t data[MAX_PKT];
};

struct gnb {
	struct crew crew;
	int rls_fd, gtp_fd, queue[2];
	uint64_t sti;
	struct addr upf;
	pthread_mutex_t mu; /* ues */
	struct gnb_ue ues[MAX_UES];
	struct gnb_counts *n;
};

/* The UE's slot, learnt from its first message (the sender id). */
static int gnb_slot(struct gnb *g, uint64_t sti, const struct addr *from)
{
	int free_slot = -1;

	for (int i = 0; i < MAX_UES; i++) {
		if (g->ues[i].known && g->ues[i].sti == sti) {
			g->ues[i].addr = *from;
			return i;
		}
		if (!g->ues[i].known && free_slot < 0)
			free_slot = i;
	}
	if (free_slot >= 0) {
		g->ues[free_slot] = (struct gnb_ue){ .known = true, .sti = sti, .addr = *from };
	}
	return free_slot;
}

static void gnb_heartbeat_ack(struct gnb *g, const struct addr *to)
{
	uint8_t msg[RLS_HDR_LEN + 4];

	rls_header(msg, RLS_HEARTBEAT_ACK, g->sti);
	put_be32(msg + RLS_HDR_LEN, (uint32_t)-50); /* dBm: a good signal */
	send_to(g->rls_fd, msg, sizeof(msg), to, "nr-gnb heartbeat ack");
	count(&g->n->heartbeat_acks_sent);
}

static void gnb_uplink(struct gnb *g, int slot, const struct rls_msg *m)
{
	struct hop h = { .uplink = 1, .slot = (uint8_t)slot };

	if (m->len > sizeof(h.data))
		return;
	count(&g->n->rls_data_in);
	h.len = (uint16_t)m->len;
	memcpy(h.data, m->pdu, m->len);
	send(g->queue[1], &h, offsetof(struct hop, data) + h.len, 0);
}

static void gnb_rls_message(struct gnb *g, const uint8_t *buf, size_t n, const struct addr *from)
{
	struct rls_msg m;
	int slot;

	if (!rls_parse(buf, n, &m))
		return;
	pthread_mutex_lock(&g->mu);
	slot = gnb_slot(g, m.sti, from);
	if (slot >= 0 && m.type == RLS_PDU_TRANSMISSION && m.pdu_type == RLS_PDU_DATA && m.pdu_id &&
	    g->ues[slot].npending < MAX_PENDING_ACKS)
		g->ues[slot].pending_acks[g->ues[slot].npending++] = m.pdu_id;
	pthread_mutex_unlock(&g->mu);
	if (slot < 0)
		return;
	if (m.type == RLS_HEARTBEAT)
		gnb_heartbeat_ack(g, from);
	else if (m.type == RLS_PDU_TRANSMISSION && m.pdu_type == RLS_PDU_DATA)
		gnb_uplink(g, slot, &m);
}

/* RLS UDP task: everything the UEs send arrives here. */
static void *gnb_rls_thread(void *arg)
{
	struct gnb *g = arg;
	uint8_t buf[MAX_PKT];
	struct addr from;

	crew_register(&g->crew);
	while (!crew_stopping(&g->crew)) {
		size_t n = receive(g->rls_fd, buf, sizeof(buf), &from);
		if (n)
			gnb_rls_message(g, buf, n, &from);
	}
	return NULL;
}

static void gnb_send_uplink(struct gnb *g, const struct hop *h)
{
	uint8_t pkt[GTPU_HDR_LEN + MAX_PKT];
	size_t len = gtpu_gpdu(pkt, TEID_UL_BASE + h->slot, h->data, h->len);

	send_to(g->gtp_fd, pkt, len, &g->upf, "nr-gnb GTP task");
	count(&g->n->gtp_ul_sent);
}

static void gnb_send_downlink(struct gnb *g, const struct hop *h)
{
	uint8_t pkt[RLS_PDU_HDR_LEN + MAX_PKT];
	struct addr to;
	size_t len;

	pthread_mutex_lock(&g->mu);
	to = g->ues[h->slot].addr;
	bool known = g->ues[h->slot].known;
	pthread_mutex_unlock(&g->mu);
	if (!known)
		return;
	len = rls_pdu(pkt, g->sti, RLS_PDU_DATA, 0, PSI, h->data, h->len);
	send_to(g->rls_fd, pkt, len, &to, "nr-gnb downlink");
	count(&g->n->rls_data_out);
}

/* GTP task: uplink to the UPF as GTP-U, downlink to the UE as RLS. */
static void *gnb_gtp_task(void *arg)
{
	struct gnb *g = arg;
	struct hop h;

	crew_register(&g->crew);
	while (!crew_stopping(&g->crew)) {
		ssize_t n = recv(g->queue[0], &h, sizeof(h), 0);
		if (n < (ssize_t)offsetof(struct hop, data))
			continue;
		if (h.uplink)
			gnb_send_uplink(g, &h);
		else
			gnb_send_downlink(g, &h);
	}
	return NULL;
}

/* GTP UDP server: the UPF's downlink G-PDUs, handed to the GTP task. */
static void *gnb_gtp_server(void *arg)
{
	struct gnb *g = arg;
	uint8_t buf[GTPU_HDR_LEN + MAX_PKT];
	struct addr from;
	struct hop h = { .uplink = 0 };

	crew_register(&g->crew);
	while (!crew_stopping(&g->crew)) {
		size_t n = receive(g->gtp_fd, buf, sizeof(buf), &from), len;
		uint32_t teid;

		if (!n || !gtpu_parse(buf, n, &teid, &len) || len > sizeof(h.data) ||
		    teid - TEID_DL_BASE >= MAX_UES)
			continue;
		count(&g->n->gtp_dl_in);
		h.slot = (uint8_t)(teid - TEID_DL_BASE);
		h.len = (uint16_t)len;
		memcpy(h.data, buf + GTPU_HDR_LEN, len);
		send(g->queue[1], &h, offsetof(struct hop, data) + h.len, 0);
	}
	return NULL;
}

static void gnb_send_acks(struct gnb *g, struct gnb_ue *u)
{
	uint8_t msg[RLS_HDR_LEN + 4 + 4 * MAX_PENDING_ACKS];
	size_t len = rls_header(msg, RLS_PDU_TRANSMISSION_ACK, g->sti);

	put_be32(msg + len, u->npending);
	len += 4;
	for (unsigned i = 0; i < u->npending; i++, len += 4)
		put_be32(msg + len, u->pending_acks[i]);
	u->npending = 0;
	send_to(g->rls_fd, msg, len, &u->addr, "nr-gnb ack");
	count(&g->n->pdu_acks_sent);
}

/* Stand-in for the MIB/SIB1 broadcast: an RRC PDU, not user plane. */
static void gnb_send_rrc(struct gnb *g, const struct gnb_ue *u)
{
	static const uint8_t sib1[32] = { 0x68, 0x01 };
	uint8_t msg[RLS_PDU_HDR_LEN + sizeof(sib1)];
	size_t len = rls_pdu(msg, g->sti, RLS_PDU_RRC, 0, 0, sib1, sizeof(sib1));

	send_to(g->rls_fd, msg, len, &u->addr, "nr-gnb RRC");
	count(&g->n->rrc_sent);
}

/* RLS control task: PDU acks every 100 ms, RRC broadcasts every 10 s. */
static void *gnb_control(void *arg)
{
	struct gnb *g = arg;
	struct timespec next = after_ms(ACK_PERIOD_MS), rrc = after_ms(RRC_PERIOD_MS);

	crew_register(&g->crew);
	while (crew_sleep_until(&g->crew, &next)) {
		bool broadcast = reached(&rrc);

		if (broadcast)
			add_ns(&rrc, RRC_PERIOD_MS * 1000000L);
		pthread_mutex_lock(&g->mu);
		for (int i = 0; i < MAX_UES; i++) {
			if (g->ues[i].known && g->ues[i].npending)
				gnb_send_acks(g, &g->ues[i]);
			if (g->ues[i].known && broadcast)
				gnb_send_rrc(g, &g->ues[i]);
		}
		pthread_mutex_unlock(&g->mu);
		add_ns(&next, ACK_PERIOD_MS * 1000000L);
	}
	return NULL;
}

static int gnb_setup(struct gnb *g, const struct addr *rls, struct counts *counts)
{
	struct timeval tv = { 0, POLL_MS * 1000 };
	struct addr any = { .len = g->upf.len };

	g->n = &counts->gnb;
	g->sti = ((uint64_t)getpid() << 32) ^ 0x6e622d67ULL;
	pthread_mutex_init(&g->mu, NULL);
	/* The GTP socket's port is the kernel's: the UPF's side is the one on
	 * --gtp-port, which is enough for a tracer matching either port. */
	any.sa.ss_family = g->upf.sa.ss_family;
	g->rls_fd = udp_socket(rls->sa.ss_family, rls, "nr-gnb RLS");
	g->gtp_fd = udp_socket(g->upf.sa.ss_family, &any, "nr-gnb GTP");
	if (g->rls_fd < 0 || g->gtp_fd < 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, g->queue)) {
		fprintf(stderr, PROG ": nr-gnb: socketpair: %s\n", strerror(errno));
		return -1;
	}
	setsockopt(g->queue[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return 0;
}

int gnb_main(struct run *r)
{
	static struct gnb g;
	void *(*fns[])(void *) = { gnb_rls_thread, gnb_gtp_task, gnb_gtp_server, gnb_control };

	g.upf = r->upf;
	crew_init(&g.crew);
	if (gnb_setup(&g, &r->gnb_rls, r->counts))
		return 1;
	return run_crew(r, &g.crew, fns, 4, &g, "gnb", NULL);
}
