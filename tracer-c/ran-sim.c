// SPDX-License-Identifier: GPL-2.0
/*
 * ran-sim: a one-host stand-in for a UERANSIM test bed, for the demo, the
 * live tests and the benchmarks. It does on the wire and in /proc what
 * UERANSIM does (see ../shared/reference/ueransim.md):
 *
 *   nr-ue  --RLS over UDP, to gNB port 4997-->  nr-gnb  --GTP-U-->  UPF
 *   nr-ue  <--RLS, from gNB port 4997--------  nr-gnb  <--GTP-U--  (echo)
 *
 * - one process named nr-gnb and one per UE named nr-ue, renamed before any
 *   thread exists so that every thread's comm carries the name;
 * - nr-ue never touches GTP-U: its "TUN reader" thread sends the uplink as
 *   RLS PDU_TRANSMISSION DATA PDUs, its control thread a HEARTBEAT a second,
 *   its RLS thread receives the downlink, heartbeat acks, PDU acks and RRC;
 * - nr-gnb's RLS thread acks heartbeats and hands DATA to the GTP task
 *   thread, which sends it as a GTP-U G-PDU to the UPF; a separate GTP UDP
 *   server thread receives the downlink and hands it back to the GTP task,
 *   which sends it to the UE over RLS from port 4997; a control thread acks
 *   DATA PDUs every 100 ms and broadcasts an RRC PDU every 10 s;
 * - the UPF stand-in is a thread of this parent process (comm ran-sim,
 *   never a target): it echoes each uplink ICMP echo request as the reply.
 *
 * Idle UEs (--idle-ues) send heartbeats only. The parent prints one JSON
 * line per process (role, pid, every thread id) before any traffic starts,
 * and a JSON summary with packet counts and rates on exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define PROG "ran-sim"
#include "cli.h"
#include "packet.h"

/* RLS (UERANSIM's radio link simulation) */
#define RLS_MAGIC 0x03
#define RLS_HDR_LEN 13	    /* magic, version x3, type, sender id */
#define RLS_PDU_HDR_LEN 26  /* + pdu type, pdu id, payload, length */
#define RLS_HEARTBEAT 4
#define RLS_HEARTBEAT_ACK 5
#define RLS_PDU_TRANSMISSION 6
#define RLS_PDU_TRANSMISSION_ACK 7
#define PDU_RRC 1
#define PDU_DATA 2
/* What the real UE puts in bytes 1-3; receivers must not match on it. */
static const uint8_t rls_version[3] = { 3, 2, 6 };

#define INNER_LEN 84 /* an IPv4 ping: 20 IP + 8 ICMP + 56 data */
#define PSI 1
/* The UPF hands out uplink TEIDs, the gNB downlink ones; here both are
 * the gNB's UE slot plus a base. */
#define TEID_UL_BASE 0x1000
#define TEID_DL_BASE 0x2000

#define MAX_UES 64
#define MAX_THREADS 8
#define MAX_PKT 2048
#define MAX_PENDING_ACKS 64
#define POLL_MS 100	       /* how soon a blocked thread notices a stop */
#define HEARTBEAT_MS 1000
#define ACK_PERIOD_MS 100
#define RRC_PERIOD_MS 10000
#define WINDOW_STALL_MS 20 /* --rate 0: a window this long without replies was lost */
#define STOP_GRACE_S 5

struct opts {
	unsigned ues, idle_ues, rate, window, duration_s;
	unsigned rls_port, gtp_port;
	const char *gnb_host, *upf_host;
};

struct addr {
	struct sockaddr_storage sa;
	socklen_t len;
};

/* Counters live in memory shared by all processes, one cache line per
 * writer, so the parent can sum them after the children are gone. */
struct ue_counts {
	_Alignas(64) unsigned long data_sent, data_received, heartbeats_sent, heartbeat_acks,
		pdu_acks, rrc_received;
};

struct gnb_counts {
	_Alignas(64) unsigned long rls_data_in, gtp_ul_sent, gtp_dl_in, rls_data_out,
		heartbeat_acks_sent, pdu_acks_sent, rrc_sent;
};

struct counts {
	struct gnb_counts gnb;
	struct {
		_Alignas(64) unsigned long echoed;
	} upf;
	struct ue_counts ue[MAX_UES];
};

static void count(unsigned long *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static unsigned long read_count(const unsigned long *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- time */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void add_ns(struct timespec *t, long ns)
{
	t->tv_sec += ns / 1000000000L;
	t->tv_nsec += ns % 1000000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static struct timespec after_ms(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	add_ns(&t, ms * 1000000L);
	return t;
}

static bool reached(const struct timespec *t)
{
	struct timespec n;

	clock_gettime(CLOCK_MONOTONIC, &n);
	return n.tv_sec > t->tv_sec || (n.tv_sec == t->tv_sec && n.tv_nsec >= t->tv_nsec);
}

/* ------------------------------------------------------------- a crew */

/* The threads of one process: each registers its thread id, then waits
 * until the parent says go, so no packet leaves before the JSON lines. */
struct crew {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* CLOCK_MONOTONIC */
	unsigned registered;
	bool go, stop;
	pid_t tids[MAX_THREADS];
	pthread_t threads[MAX_THREADS];
	unsigned nthreads;
};

static void crew_init(struct crew *c)
{
	pthread_condattr_t a;

	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &a);
	pthread_condattr_destroy(&a);
	c->tids[0] = getpid();
	c->registered = 1;
}

static int crew_spawn(struct crew *c, void *(*fn)(void *), void *arg)
{
	int err;

	if (c->nthreads + 1 >= MAX_THREADS)
		return EAGAIN;
	err = pthread_create(&c->threads[c->nthreads], NULL, fn, arg);
	if (!err)
		c->nthreads++;
	return err;
}

static void crew_register(struct crew *c)
{
	pthread_mutex_lock(&c->mu);
	c->tids[c->registered++] = (pid_t)syscall(SYS_gettid);
	pthread_cond_broadcast(&c->cv);
	while (!c->go && !c->stop)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

static void crew_wait_registered(struct crew *c)
{
	pthread_mutex_lock(&c->mu);
	while (c->registered < c->nthreads + 1)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

static void crew_set(struct crew *c, bool *flag)
{
	pthread_mutex_lock(&c->mu);
	__atomic_store_n(flag, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static bool crew_stopping(struct crew *c)
{
	return __atomic_load_n(&c->stop, __ATOMIC_RELAXED);
}

/* Sleeps until t or a stop; false on stop. */
static bool crew_sleep_until(struct crew *c, const struct timespec *t)
{
	bool stop;

	pthread_mutex_lock(&c->mu);
	while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, t) != ETIMEDOUT)
		;
	stop = c->stop;
	pthread_mutex_unlock(&c->mu);
	return !stop;
}

static void crew_wait_stop(struct crew *c)
{
	pthread_mutex_lock(&c->mu);
	while (!c->stop)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

static void crew_stop_and_join(struct crew *c)
{
	crew_set(c, &c->stop);
	for (unsigned i = 0; i < c->nthreads; i++)
		pthread_join(c->threads[i], NULL);
}

/* ------------------------------------------------------------- sockets */

static int resolve(const char *opt, const char *host, unsigned port, struct addr *out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai;
	char portstr[8];
	int err;

	snprintf(portstr, sizeof(portstr), "%u", port);
	err = getaddrinfo(host, portstr, &hints, &ai);
	if (err) {
		fprintf(stderr, PROG ": %s %s: %s (expected a numeric IPv4 or IPv6 address)\n", opt,
			host, gai_strerror(err));
		return -1;
	}
	memcpy(&out->sa, ai->ai_addr, ai->ai_addrlen);
	out->len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void describe(const struct addr *a, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)&a->sa;
		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		port = ntohs(s->sin6_port);
		snprintf(buf, n, "[%s]:%u", host, port);
		return;
	}
	const struct sockaddr_in *s = (const void *)&a->sa;
	inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
	port = ntohs(s->sin_port);
	snprintf(buf, n, "%s:%u", host, port);
}

/* A UDP socket whose receives time out after POLL_MS, bound to `local`
 * when given (else the kernel picks a port at the first send). */
static int udp_socket(int family, const struct addr *local, const char *what)
{
	struct timeval tv = { 0, POLL_MS * 1000 };
	char where[INET6_ADDRSTRLEN + 10];
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);

	if (fd < 0) {
		fprintf(stderr, PROG ": %s: socket: %s\n", what, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (local && bind(fd, (const struct sockaddr *)&local->sa, local->len)) {
		describe(local, where, sizeof(where));
		fprintf(stderr, PROG ": %s: bind %s: %s\n", what, where, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Loopback drops are part of the game (a full socket buffer, a peer that
 * just exited): only unexpected errors are worth a message. */
static void send_to(int fd, const void *buf, size_t len, const struct addr *to, const char *who)
{
	if (sendto(fd, buf, len, 0, (const struct sockaddr *)&to->sa, to->len) < 0 &&
	    errno != ECONNREFUSED && errno != EAGAIN && errno != ENOBUFS && errno != EPERM)
		fprintf(stderr, PROG ": %s: sendto: %s\n", who, strerror(errno));
}

/* A receive of up to `cap` bytes; 0 on timeout or a transient error. */
static size_t receive(int fd, uint8_t *buf, size_t cap, struct addr *from)
{
	ssize_t n;

	from->len = sizeof(from->sa);
	n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&from->sa, &from->len);
	return n > 0 ? (size_t)n : 0;
}

/* ------------------------------------------------------------ packets */

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const uint8_t *p)
{
	return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

static size_t rls_header(uint8_t *p, uint8_t type, uint64_t sti)
{
	p[0] = RLS_MAGIC;
	memcpy(p + 1, rls_version, sizeof(rls_version));
	p[4] = type;
	put_be64(p + 5, sti);
	return RLS_HDR_LEN;
}

static size_t rls_pdu(uint8_t *p, uint64_t sti, uint8_t pdu_type, uint32_t pdu_id,
		      uint32_t payload, const uint8_t *pdu, uint32_t len)
{
	rls_header(p, RLS_PDU_TRANSMISSION, sti);
	p[13] = pdu_type;
	put_be32(p + 14, pdu_id);
	put_be32(p + 18, payload);
	put_be32(p + 22, len);
	memcpy(p + RLS_PDU_HDR_LEN, pdu, len);
	return RLS_PDU_HDR_LEN + len;
}

struct rls_msg {
	uint8_t type;
	uint64_t sti;
	uint8_t pdu_type;
	uint32_t pdu_id, payload, len;
	const uint8_t *pdu;
};

static bool rls_parse(const uint8_t *p, size_t n, struct rls_msg *m)
{
	if (n < RLS_HDR_LEN || p[0] != RLS_MAGIC)
		return false;
	m->type = p[4];
	m->sti = get_be64(p + 5);
	if (m->type != RLS_PDU_TRANSMISSION)
		return true;
	if (n < RLS_PDU_HDR_LEN)
		return false;
	m->pdu_type = p[13];
	m->pdu_id = get_be32(p + 14);
	m->payload = get_be32(p + 18);
	m->len = get_be32(p + 22);
	m->pdu = p + RLS_PDU_HDR_LEN;
	return m->len <= n - RLS_PDU_HDR_LEN;
}

/* An IPv4 ICMP echo request from the UE's address 10.45.0.(1+ue) to
 * 192.0.2.1 (TEST-NET-1), as `ping` would write it into uesimtun0. */
static void ping_request(uint8_t *ip, unsigned ue, uint16_t seq)
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
	for (unsigned i = 8; i < INNER_LEN - IPV4_HDR_LEN; i++)
		icmp[i] = (uint8_t)i;
	put_be16(icmp + 2, inet_checksum(icmp, INNER_LEN - IPV4_HDR_LEN));
}

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

static size_t gtpu_gpdu(uint8_t *p, uint32_t teid, const uint8_t *inner, size_t len)
{
	gtpu_header(p, teid, (uint16_t)len);
	memcpy(p + GTPU_HDR_LEN, inner, len);
	return GTPU_HDR_LEN + len;
}

static bool gtpu_parse(const uint8_t *p, size_t n, uint32_t *teid, size_t *len)
{
	if (n < GTPU_HDR_LEN || (p[0] & 0xf7) != 0x30 || p[1] != GTPU_GPDU)
		return false;
	*teid = get_be32(p + 4);
	*len = ((size_t)p[2] << 8) | p[3];
	return *len <= n - GTPU_HDR_LEN;
}

/* ----------------------------------------------------------- the gNB */

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
	if (slot >= 0 && m.type == RLS_PDU_TRANSMISSION && m.pdu_type == PDU_DATA && m.pdu_id &&
	    g->ues[slot].npending < MAX_PENDING_ACKS)
		g->ues[slot].pending_acks[g->ues[slot].npending++] = m.pdu_id;
	pthread_mutex_unlock(&g->mu);
	if (slot < 0)
		return;
	if (m.type == RLS_HEARTBEAT)
		gnb_heartbeat_ack(g, from);
	else if (m.type == RLS_PDU_TRANSMISSION && m.pdu_type == PDU_DATA)
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
	len = rls_pdu(pkt, g->sti, PDU_DATA, 0, PSI, h->data, h->len);
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
	size_t len = rls_pdu(msg, g->sti, PDU_RRC, 0, 0, sib1, sizeof(sib1));

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

/* ----------------------------------------------------------- the UEs */

struct ue {
	struct crew crew;
	unsigned index;
	bool idle;
	unsigned rate, window;
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

static void ue_data_received(struct ue *u)
{
	count(&u->n->data_received);
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
	while (!crew_stopping(&u->crew)) {
		size_t n = receive(u->fd, buf, sizeof(buf), &from);

		if (!n || !rls_parse(buf, n, &m))
			continue;
		if (m.type == RLS_HEARTBEAT_ACK)
			count(&u->n->heartbeat_acks);
		else if (m.type == RLS_PDU_TRANSMISSION_ACK)
			count(&u->n->pdu_acks);
		else if (m.type == RLS_PDU_TRANSMISSION && m.pdu_type == PDU_RRC)
			count(&u->n->rrc_received);
		else if (m.type == RLS_PDU_TRANSMISSION && m.pdu_type == PDU_DATA)
			ue_data_received(u);
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
		ping_request(ip, u->index, (uint16_t)++pdu_id);
		size_t len = rls_pdu(pkt, u->sti, PDU_DATA, pdu_id, PSI, ip, INNER_LEN);
		send_to(u->fd, pkt, len, &u->gnb, "nr-ue uplink");
		count(&u->n->data_sent);
		if (u->rate)
			add_ns(&next, 1000000000L / u->rate);
	}
	return NULL;
}

/* ------------------------------------------------------- the processes */

struct child {
	const char *name;
	pid_t pid;
	unsigned ue; /* for UEs */
	bool idle, exited;
};

struct run {
	struct opts o;
	struct addr gnb_rls, upf;
	struct counts *counts;
	int report[2], go[2], upf_fd;
	struct child kids[1 + MAX_UES];
	unsigned nkids;
};

static void json_tids(FILE *f, const struct crew *c)
{
	for (unsigned i = 0; i < c->registered; i++)
		fprintf(f, "%s%d", i ? "," : "", (int)c->tids[i]);
}

/* The JSON line, written to the parent in one write (atomic on a pipe). */
static void report(int fd, const struct crew *c, const char *role, const struct ue *u)
{
	char comm[17] = "", *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	prctl(PR_GET_NAME, comm, 0, 0, 0);
	fprintf(f, "{\"role\":\"%s\",\"name\":\"%s\",\"pid\":%d,", role, comm, (int)getpid());
	if (u)
		fprintf(f, "\"ue\":%u,\"idle\":%s,\"sti\":\"0x%016llx\",", u->index,
			u->idle ? "true" : "false", (unsigned long long)u->sti);
	fprintf(f, "\"tids\":[");
	json_tids(f, c);
	fprintf(f, "]}\n");
	fclose(f);
	if (write(fd, buf, size) != (ssize_t)size)
		fprintf(stderr, PROG ": %s: cannot report to the parent: %s\n", role, strerror(errno));
	free(buf);
}

/* Blocks until the parent closes its end of the go pipe. */
static void wait_go(int fd)
{
	char c;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n > 0 || (n < 0 && errno == EINTR));
}

static void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

/* Until SIGTERM/SIGINT/SIGHUP (blocked since before the fork). */
static void wait_stop_signal(void)
{
	sigset_t set;
	int sig;

	stop_signals(&set);
	sigwait(&set, &sig);
}

/* Threads are created, reported, released on go, stopped on a signal. */
static int run_crew(struct run *r, struct crew *c, void *(**fns)(void *), unsigned nfns,
		    void *arg, const char *role, const struct ue *u)
{
	for (unsigned i = 0; i < nfns; i++) {
		int err = crew_spawn(c, fns[i], arg);
		if (err) {
			fprintf(stderr, PROG ": %s: pthread_create: %s\n", role, strerror(err));
			return 1;
		}
	}
	crew_wait_registered(c);
	report(r->report[1], c, role, u);
	wait_go(r->go[0]);
	crew_set(c, &c->go);
	wait_stop_signal();
	crew_stop_and_join(c);
	return 0;
}

static int gnb_main(struct run *r)
{
	static struct gnb g;
	void *(*fns[])(void *) = { gnb_rls_thread, gnb_gtp_task, gnb_gtp_server, gnb_control };

	g.upf = r->upf;
	crew_init(&g.crew);
	if (gnb_setup(&g, &r->gnb_rls, r->counts))
		return 1;
	return run_crew(r, &g.crew, fns, 4, &g, "gnb", NULL);
}

static int ue_main(struct run *r, unsigned index, bool idle)
{
	static struct ue u;
	void *(*fns[])(void *) = { ue_rls_thread, ue_uplink, ue_control };
	pthread_condattr_t a;

	u.index = index;
	u.idle = idle;
	u.rate = r->o.rate;
	u.window = r->o.window;
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

/* In the child: named before any thread exists, gone with the parent. */
static pid_t fork_child(struct run *r, struct child *k)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid)
		return pid;
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)
		_exit(1);
	prctl(PR_SET_NAME, k->name, 0, 0, 0);
	close(r->go[1]);
	close(r->report[0]);
	close(r->upf_fd);
	_exit(k->ue == (unsigned)-1 ? gnb_main(r) : ue_main(r, k->ue, k->idle));
}

/* The child's JSON line; false if it died first or took over 10 s. */
static bool read_report(struct run *r, const struct child *k, char *line, size_t cap)
{
	struct pollfd p = { .fd = r->report[0], .events = POLLIN };

	for (int waited = 0; waited < 10000; waited += POLL_MS) {
		if (waitpid(k->pid, NULL, WNOHANG) == k->pid)
			return false;
		if (poll(&p, 1, POLL_MS) <= 0)
			continue;
		ssize_t n = read(r->report[0], line, cap - 1);
		if (n <= 0)
			return false;
		line[n] = 0;
		return true;
	}
	return false;
}

static int start_child(struct run *r, const char *name, unsigned ue, bool idle, FILE *json)
{
	struct child *k = &r->kids[r->nkids];
	char line[4096];

	*k = (struct child){ .name = name, .ue = ue, .idle = idle };
	k->pid = fork_child(r, k);
	if (k->pid < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		return -1;
	}
	r->nkids++;
	if (!read_report(r, k, line, sizeof(line))) {
		fprintf(stderr, PROG ": %s (pid %d) failed to start\n", name, (int)k->pid);
		return -1;
	}
	fputs(line, json);
	return 0;
}

/* ------------------------------------------------------------ the UPF */

struct upf {
	struct crew crew;
	int fd;
	unsigned long *echoed;
};

/* Echoes every uplink G-PDU back on the downlink TEID. */
static void *upf_thread(void *arg)
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

/* ----------------------------------------------------------- the parent */

static void stop_children(struct run *r)
{
	double deadline = now_s() + STOP_GRACE_S;

	for (unsigned i = 0; i < r->nkids; i++)
		if (!r->kids[i].exited)
			kill(r->kids[i].pid, SIGTERM);
	for (unsigned i = 0; i < r->nkids; i++) {
		struct child *k = &r->kids[i];

		while (!k->exited) {
			pid_t w = waitpid(k->pid, NULL, WNOHANG);

			if (w == k->pid || (w < 0 && errno == ECHILD))
				break;
			if (now_s() > deadline) {
				fprintf(stderr, PROG ": %s pid %d ignored SIGTERM; killing it\n",
					k->name, (int)k->pid);
				kill(k->pid, SIGKILL);
				waitpid(k->pid, NULL, 0);
				break;
			}
			usleep(10000);
		}
		k->exited = true;
	}
}

/* Reaps exited children; false when the gNB is among them. */
static bool reap(struct run *r)
{
	bool gnb_alive = true;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < r->nkids; i++) {
			struct child *k = &r->kids[i];
			if (k->pid != pid)
				continue;
			k->exited = true;
			gnb_alive &= i != 0;
			fprintf(stderr, PROG ": %s pid %d exited (%s %d)\n", k->name, (int)pid,
				WIFSIGNALED(status) ? "signal" : "status",
				WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		}
	}
	return gnb_alive;
}

/* Until a signal, --duration, or the gNB's death (then false). */
static bool supervise(struct run *r)
{
	double end = r->o.duration_s ? now_s() + r->o.duration_s : 0;
	struct timespec tick = { 0, POLL_MS * 1000000L };
	sigset_t set;

	stop_signals(&set);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		int sig = sigtimedwait(&set, NULL, &tick);

		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
			return true;
		if (!reap(r)) {
			fprintf(stderr, PROG ": nr-gnb is gone: stopping\n");
			return false;
		}
		if (end && now_s() >= end)
			return true;
	}
}

static void summary(const struct run *r, double elapsed)
{
	const struct counts *c = r->counts;
	unsigned long sent = 0, received = 0, hb = 0, hb_acks = 0, acks = 0, rrc = 0;

	for (unsigned i = 0; i < r->o.ues + r->o.idle_ues; i++) {
		sent += read_count(&c->ue[i].data_sent);
		received += read_count(&c->ue[i].data_received);
		hb += read_count(&c->ue[i].heartbeats_sent);
		hb_acks += read_count(&c->ue[i].heartbeat_acks);
		acks += read_count(&c->ue[i].pdu_acks);
		rrc += read_count(&c->ue[i].rrc_received);
	}
	printf("{\"role\":\"summary\",\"elapsed_s\":%.3f,\"ues\":%u,\"idle_ues\":%u,\"rate\":%u,"
	       "\"ue_data_sent\":%lu,\"gnb_rls_data_in\":%lu,\"gnb_gtp_ul_sent\":%lu,"
	       "\"upf_echoed\":%lu,\"gnb_gtp_dl_in\":%lu,\"gnb_rls_data_out\":%lu,"
	       "\"ue_data_received\":%lu,\"heartbeats_sent\":%lu,\"heartbeat_acks\":%lu,"
	       "\"pdu_acks\":%lu,\"rrc_received\":%lu,\"uplink_pps\":%.1f,\"pps\":%.1f}\n",
	       elapsed, r->o.ues, r->o.idle_ues, r->o.rate, sent,
	       read_count(&c->gnb.rls_data_in), read_count(&c->gnb.gtp_ul_sent),
	       read_count(&c->upf.echoed), read_count(&c->gnb.gtp_dl_in),
	       read_count(&c->gnb.rls_data_out), received, hb, hb_acks, acks, rrc,
	       elapsed > 0 ? sent / elapsed : 0, elapsed > 0 ? received / elapsed : 0);
	fflush(stdout);
}

static int start_all(struct run *r, FILE *json)
{
	if (start_child(r, "nr-gnb", (unsigned)-1, false, json))
		return -1;
	for (unsigned i = 0; i < r->o.ues + r->o.idle_ues; i++)
		if (start_child(r, "nr-ue", i, i >= r->o.ues, json))
			return -1;
	return 0;
}

static int run(struct run *r)
{
	static struct upf upf;
	char *lines = NULL;
	size_t size = 0;
	FILE *json = open_memstream(&lines, &size);
	bool ok;

	upf.fd = r->upf_fd;
	upf.echoed = &r->counts->upf.echoed;
	crew_init(&upf.crew);
	if (start_all(r, json)) {
		stop_children(r);
		return 1;
	}
	/* After the forks: a child of a multi-threaded process may only use
	 * async-signal-safe calls, and these children do much more. */
	if (crew_spawn(&upf.crew, upf_thread, &upf)) {
		fprintf(stderr, PROG ": UPF: pthread_create failed\n");
		stop_children(r);
		return 1;
	}
	crew_wait_registered(&upf.crew);
	report(STDOUT_FILENO, &upf.crew, "upf", NULL);
	fclose(json);
	fputs(lines, stdout);
	fflush(stdout);
	free(lines);

	crew_set(&upf.crew, &upf.crew.go);
	close(r->go[1]);
	double start = now_s();
	ok = supervise(r);
	double elapsed = now_s() - start;
	stop_children(r);
	crew_stop_and_join(&upf.crew);
	summary(r, elapsed);
	return ok ? 0 : 1;
}

/* ------------------------------------------------------------- options */

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [--ues N=1] [--idle-ues N=0] [--rate PPS=10 (per UE; 0: as fast as\n"
		   "       the round trip allows)] [--window N=32 (with --rate 0)] [--duration S=0\n"
		   "       (0: until SIGINT/SIGTERM)] [--gnb ADDR=127.0.0.1] [--rls-port 4997]\n"
		   "       [--upf ADDR=127.0.0.1] [--gtp-port 2152]\n");
}

static int number(const char *opt, unsigned long min, unsigned long max, unsigned *out)
{
	unsigned long v;

	if (parse_ul(opt, optarg, min, max, &v))
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "ues", required_argument, NULL, 'u' },
		{ "idle-ues", required_argument, NULL, 'i' },
		{ "rate", required_argument, NULL, 'r' },
		{ "window", required_argument, NULL, 'w' },
		{ "duration", required_argument, NULL, 'd' },
		{ "gnb", required_argument, NULL, 'g' },
		{ "rls-port", required_argument, NULL, 'R' },
		{ "upf", required_argument, NULL, 'U' },
		{ "gtp-port", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	int c, bad = 0;

	while (!bad && (c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'u': bad = number("--ues", 0, MAX_UES, &o->ues); break;
		case 'i': bad = number("--idle-ues", 0, MAX_UES, &o->idle_ues); break;
		case 'r': bad = number("--rate", 0, 1000000, &o->rate); break;
		case 'w': bad = number("--window", 1, 1000000, &o->window); break;
		case 'd': bad = number("--duration", 0, 1000000, &o->duration_s); break;
		case 'R': bad = number("--rls-port", 1, 65535, &o->rls_port); break;
		case 'G': bad = number("--gtp-port", 1, 65535, &o->gtp_port); break;
		case 'g': o->gnb_host = optarg; break;
		case 'U': o->upf_host = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (bad)
		return 2;
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (o->ues + o->idle_ues > MAX_UES) {
		fprintf(stderr, PROG ": --ues + --idle-ues: %u UEs, at most %d\n",
			o->ues + o->idle_ues, MAX_UES);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static struct run r = { .o = { .ues = 1, .rate = 10, .window = 32, .rls_port = 4997,
				       .gtp_port = 2152, .gnb_host = "127.0.0.1",
				       .upf_host = "127.0.0.1" } };
	sigset_t set;
	int err = parse_opts(argc, argv, &r.o);

	if (err)
		return err;
	if (resolve("--gnb", r.o.gnb_host, r.o.rls_port, &r.gnb_rls) ||
	    resolve("--upf", r.o.upf_host, r.o.gtp_port, &r.upf))
		return 2;
	r.counts = mmap(NULL, sizeof(*r.counts), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r.counts == MAP_FAILED) {
		fprintf(stderr, PROG ": mmap: %s\n", strerror(errno));
		return 1;
	}
	r.upf_fd = udp_socket(r.upf.sa.ss_family, &r.upf, "UPF");
	if (r.upf_fd < 0)
		return 1;
	if (pipe2(r.report, O_CLOEXEC) || pipe2(r.go, O_CLOEXEC)) {
		fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
		return 1;
	}
	/* Blocked in every process and thread from here on: each process
	 * takes them with sigwait in its main thread, so a stop is orderly. */
	stop_signals(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return run(&r);
}
