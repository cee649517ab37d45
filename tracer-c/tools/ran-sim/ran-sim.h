/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ran-sim's parts, declared for each other. The layout follows the data:
 *
 *   ue.c   nr-ue process: TUN reader (uplink pings as RLS DATA), control
 *          (heartbeats), RLS receiver
 *   gnb.c  nr-gnb process: RLS receiver, GTP task, GTP server, control
 *   upf.c  the UPF echo, a thread of the parent
 *   rtt.c  the UEs' round-trip time histogram
 *   rls.c, gtpu.c   the two protocols' encoders and parsers (../../include/wire.h)
 *   net.c  UDP sockets and addresses
 *   crew.c the threads of one process and the clock they run on
 *   procs.c  forking the processes, their JSON lines, supervising them
 *   main.c options, the run, the summary
 */
#ifndef RAN_SIM_H
#define RAN_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/types.h>

#define PROG "ran-sim"
#include "packet.h"
#include "clock.h"

#define INNER_LEN 84 /* an IPv4 ping: 20 IP + 8 ICMP + 56 data */
#define PSI 1
/* The UPF hands out uplink TEIDs, the gNB downlink ones; here both are
 * the gNB's UE slot plus a base. */
#define TEID_UL_BASE 0x1000
#define TEID_DL_BASE 0x2000

#define MAX_UES 64
#define MAX_THREADS 8
#define MAX_PKT 2048
#define POLL_MS 100 /* how soon a blocked thread notices a stop */

struct opts {
	unsigned ues, idle_ues, rate, window, duration_s, warmup_s;
	unsigned rls_port, gtp_port;
	const char *gnb_host, *upf_host;
};

/* ---- counters (main.c sums them) ---- */

/* Counters live in memory shared by all processes, one cache line per
 * writer, so the parent can sum them after the children are gone. */
#define RTT_SUB_BITS 4
#define RTT_SUB (1u << RTT_SUB_BITS)
#define RTT_BUCKETS (RTT_SUB * 33) /* up to 2^36 ns */

struct rtt {
	unsigned long bucket[RTT_BUCKETS];
	unsigned long count, max_ns;
};

struct ue_counts {
	_Alignas(64) unsigned long data_sent, data_received, heartbeats_sent, heartbeat_acks,
		pdu_acks, rrc_received;
	struct rtt rtt;
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

static inline void count(unsigned long *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static inline unsigned long read_count(const unsigned long *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* ---- rtt.c ---- */

void rtt_record(struct rtt *h, uint64_t ns);
void rtt_add(struct rtt *sum, const struct rtt *h);
void rtt_json(FILE *f, const struct rtt *h);

/* ---- crew.c ---- */

struct timespec after_ms(long ms);
bool reached(const struct timespec *t);

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

void crew_init(struct crew *c);
int crew_spawn(struct crew *c, void *(*fn)(void *), void *arg);
void crew_register(struct crew *c);
void crew_wait_registered(struct crew *c);
void crew_set(struct crew *c, bool *flag);
bool crew_stopping(struct crew *c);
bool crew_sleep_until(struct crew *c, const struct timespec *t);
void crew_wait_stop(struct crew *c);
void crew_stop_and_join(struct crew *c);

/* ---- net.c ---- */

struct addr {
	struct sockaddr_storage sa;
	socklen_t len;
};

int resolve(const char *opt, const char *host, unsigned port, struct addr *out);
int udp_socket(int family, const struct addr *local, const char *what);
void send_to(int fd, const void *buf, size_t len, const struct addr *to, const char *who);
size_t receive(int fd, uint8_t *buf, size_t cap, struct addr *from);

/* ---- rls.c ---- */

struct rls_msg {
	uint8_t type;
	uint64_t sti;
	uint8_t pdu_type;
	uint32_t pdu_id, payload, len;
	const uint8_t *pdu;
};

size_t rls_header(uint8_t *p, uint8_t type, uint64_t sti);
size_t rls_pdu(uint8_t *p, uint64_t sti, uint8_t pdu_type, uint32_t pdu_id, uint32_t payload,
	       const uint8_t *pdu, uint32_t len);
bool rls_parse(const uint8_t *p, size_t n, struct rls_msg *m);

/* ---- gtpu.c ---- */

size_t gtpu_gpdu(uint8_t *p, uint32_t teid, const uint8_t *inner, size_t len);
bool gtpu_parse(const uint8_t *p, size_t n, uint32_t *teid, size_t *len);

/* ---- procs.c: the processes ---- */

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

struct ue;
void stop_signals(sigset_t *set);
void report(int fd, const struct crew *c, const char *role, const struct ue *u);
int run_crew(struct run *r, struct crew *c, void *(**fns)(void *), unsigned nfns, void *arg,
	     const char *role, const struct ue *u);
int start_all(struct run *r, FILE *json);
void stop_children(struct run *r);
bool supervise(struct run *r);

/* ---- gnb.c, ue.c, upf.c ---- */

int gnb_main(struct run *r);
int ue_main(struct run *r, unsigned index, bool idle);
/* What report() says of a UE. */
void ue_describe(FILE *f, const struct ue *u);

struct upf {
	struct crew crew;
	int fd;
	unsigned long *echoed;
};

void *upf_thread(void *arg);

#endif
