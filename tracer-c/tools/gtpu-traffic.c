// SPDX-License-Identifier: GPL-2.0
/*
 * gtpu-traffic: stand-in for UERANSIM nr-gnb / nr-ue in tests and demos.
 *
 * Renames itself (so every thread's comm is NAME, as with the real
 * binaries), starts N worker threads that send real GTP-U G-PDUs over UDP,
 * and prints one JSON line naming the process and its threads. The main
 * thread never sends, so a tracer that attributes packets correctly reports
 * only worker thread ids.
 *
 * usage: gtpu-traffic --name NAME [--threads N] [--count PKTS] [--interval-ms MS]
 *                     [--port P] [--dest ADDR] [--teid BASE] [--linger]
 *                     [--inner-len N] [--sink] [--cpu N] [--seconds S] [--batch N]
 *
 * At line rate (--interval-ms 0 --cpu N --seconds S --batch N, the overhead
 * benchmark's sender) a JSON summary gives the rate. The packets must go
 * where no ICMP error path is timed: to a device that takes them and
 * receives nothing (the benchmark's TUN device), or, with --sink, to a
 * socket of this process bound on --dest.
 *
 * --batch hands N packets to the kernel per sendmmsg() call: each packet
 * still takes the whole per-packet path (UDP, IP, the device, the tracer's
 * hook), but the system call's own entry and exit, which the CPU's
 * mitigations make dear, are paid once per batch, as a UPF's batching
 * sender or a NIC's bursts would, so what a tracer adds per packet is a
 * larger share of what is timed.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdatomic.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#define PROG "gtpu-traffic"
#include "cli.h"
#include "packet.h"
#include "clock.h"
#define MAX_THREADS 256
/* A bare IPv4 header is enough for a dummy T-PDU. */
#define MIN_INNER_LEN IPV4_HDR_LEN
#define MAX_INNER_LEN 1400
#define MAX_BATCH 64

struct opts {
	const char *name;
	unsigned threads;
	unsigned long count; /* 0: until killed */
	unsigned interval_ms;
	unsigned port;
	const char *dest;
	uint32_t teid_base;
	unsigned inner_len;
	int cpu; /* -1: any */
	unsigned seconds; /* 0: no time limit */
	unsigned batch;   /* packets per sendmmsg() */
	bool linger, sink;
};

struct worker {
	pthread_t thread;
	unsigned index;
	pid_t tid;
	unsigned long sent;
	const struct opts *o;
	struct sockaddr_storage dst;
	socklen_t dst_len;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static unsigned started, finished;
static bool go;
static atomic_bool stop;

static size_t build_packet(uint8_t *pkt, uint32_t teid, unsigned index, unsigned inner_len)
{
	static const uint8_t upf_side[4] = { 10, 60, 255, 254 };
	const uint8_t ue[4] = { 10, 60, (uint8_t)((1 + index) >> 8), (uint8_t)(1 + index) };

	gtpu_header(pkt, teid, (uint16_t)inner_len);
	/* Inner IPv4 header, UE 10.60.0.(1+index) -> 10.60.255.254, protocol
	 * 253 (RFC 3692 experimental) so nothing mistakes it for real data;
	 * zeros after it. */
	memset(pkt + GTPU_HDR_LEN, 0, inner_len);
	ipv4_header(pkt + GTPU_HDR_LEN, (uint16_t)inner_len, 253, ue, upf_side);
	return GTPU_HDR_LEN + inner_len;
}

/* --cpu N: thread i runs on CPU N + i (modulo the CPUs online) only, so
 * runs compare like with like and threads do not share a CPU while there
 * are CPUs to spare. */
static void pin(const struct worker *w)
{
	long ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	int cpu = (int)((w->o->cpu + w->index) % (ncpus > 0 ? ncpus : 1));
	cpu_set_t set;
	int err;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (err)
		fprintf(stderr, PROG ": thread %u: CPU %d: %s\n", w->index, cpu, strerror(err));
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct opts *o = w->o;
	uint8_t pkt[GTPU_HDR_LEN + MAX_INNER_LEN];
	size_t len = build_packet(pkt, o->teid_base + w->index, w->index, o->inner_len);
	struct timespec next;
	unsigned long sent = 0;
	int fd;

	if (o->cpu >= 0)
		pin(w);

	pthread_mutex_lock(&mu);
	w->tid = (pid_t)syscall(SYS_gettid);
	started++;
	pthread_cond_broadcast(&cv);
	while (!go)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);

	/* Unconnected on purpose: a connected UDP socket turns the ICMP port
	 * unreachable (nobody listens on 2152 in tests) into ECONNREFUSED on
	 * the next send, which would skip every other packet. */
	fd = socket(w->dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0) {
		fprintf(stderr, PROG ": thread %u: socket: %s\n", w->index, strerror(errno));
		goto done;
	}
	struct iovec iov = { .iov_base = pkt, .iov_len = len };
	struct mmsghdr msgs[MAX_BATCH];
	for (unsigned i = 0; i < o->batch; i++)
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_name = &w->dst, .msg_namelen = w->dst_len,
							 .msg_iov = &iov, .msg_iovlen = 1 } };
	clock_gettime(CLOCK_MONOTONIC, &next);
	while ((!o->count || sent < o->count) && !atomic_load_explicit(&stop, memory_order_relaxed)) {
		unsigned n = o->count && o->count - sent < o->batch ? o->count - sent : o->batch;
		int done = sendmmsg(fd, msgs, n, 0);

		if (done < 0) {
			if (errno != ECONNREFUSED && errno != EAGAIN && errno != ENOBUFS)
				fprintf(stderr, PROG ": thread %u: sendmmsg: %s\n", w->index,
					strerror(errno));
			done = 1; /* the packet that failed was sent as far as we go */
		}
		sent += done;
		if (o->interval_ms && (!o->count || sent < o->count)) {
			add_ns(&next, o->interval_ms * 1000000L);
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
				;
		}
	}
	close(fd);
done:
	pthread_mutex_lock(&mu);
	w->sent = sent;
	finished++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	/* With --linger the thread must stay in /proc/<pid>/task so that
	 * tests can still see (and boost) it after the traffic is over. */
	if (o->linger)
		for (;;)
			pause();
	return NULL;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* --sink: a socket of this process on --dest, never read. The packets
 * then end in its full receive queue instead of the ICMP "port
 * unreachable" path, which costs more than the send and is not what a
 * tracer's overhead should be measured against. Open until exit. */
static int open_sink(const struct addrinfo *ai, const struct opts *o)
{
	int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);

	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen)) {
		fprintf(stderr, PROG ": --sink: bind %s port %u: %s\n", o->dest, o->port,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* --seconds: what the threads sent, and the rate. */
static void print_summary(const struct worker *workers, unsigned n, double elapsed)
{
	unsigned long sent = 0;

	for (unsigned i = 0; i < n; i++)
		sent += workers[i].sent;
	printf("{\"sent\":%lu,\"elapsed_s\":%.3f,\"pps\":%.0f}\n", sent, elapsed,
	       elapsed > 0 ? sent / elapsed : 0.0);
	fflush(stdout);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " --name NAME [--threads N=3] [--count PACKETS_PER_THREAD=0]\n"
		   "       [--interval-ms MS=100] [--port " WIRE_STR(GTPU_PORT) "] [--dest 127.0.0.1]\n"
		   "       [--teid BASE=0x1000] [--linger] [--inner-len N=20] [--sink] [--cpu N]\n"
		   "       [--seconds S (then a JSON summary)] [--batch N=1 packets per sendmmsg()]\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'c' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "port", required_argument, NULL, 'p' },
		{ "dest", required_argument, NULL, 'd' },
		{ "teid", required_argument, NULL, 'T' },
		{ "linger", no_argument, NULL, 'l' },
		{ "inner-len", required_argument, NULL, 'L' },
		{ "sink", no_argument, NULL, 's' },
		{ "cpu", required_argument, NULL, 'C' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "batch", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct opts o = { .threads = 3, .interval_ms = 100, .port = GTPU_PORT, .dest = "127.0.0.1",
			  .teid_base = 0x1000, .inner_len = MIN_INNER_LEN, .cpu = -1,
			  .batch = 1 };
	static struct worker workers[MAX_THREADS];
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai;
	char portstr[8], comm[17] = "";
	unsigned long v;
	int c, err;

	while ((c = getopt_long(argc, argv, "n:t:c:i:p:d:T:lh", lopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			o.name = optarg;
			break;
		case 't':
			if (parse_ul("--threads", optarg, 1, MAX_THREADS, &v))
				return 2;
			o.threads = v;
			break;
		case 'c':
			if (parse_ul("--count", optarg, 0, ~0UL, &v))
				return 2;
			o.count = v;
			break;
		case 'i':
			if (parse_ul("--interval-ms", optarg, 0, 3600000, &v))
				return 2;
			o.interval_ms = v;
			break;
		case 'p':
			if (parse_ul("--port", optarg, 1, 65535, &v))
				return 2;
			o.port = v;
			break;
		case 'd':
			o.dest = optarg;
			break;
		case 'T':
			if (parse_ul("--teid", optarg, 0, 0xffffffffUL, &v))
				return 2;
			o.teid_base = (uint32_t)v;
			break;
		case 'l':
			o.linger = true;
			break;
		case 'L':
			if (parse_ul("--inner-len", optarg, MIN_INNER_LEN, MAX_INNER_LEN, &v))
				return 2;
			o.inner_len = v;
			break;
		case 's':
			o.sink = true;
			break;
		case 'C':
			if (parse_ul("--cpu", optarg, 0, CPU_SETSIZE - 1, &v))
				return 2;
			o.cpu = (int)v;
			break;
		case 'S':
			if (parse_ul("--seconds", optarg, 1, 86400, &v))
				return 2;
			o.seconds = v;
			break;
		case 'B':
			if (parse_ul("--batch", optarg, 1, MAX_BATCH, &v))
				return 2;
			o.batch = (unsigned)v;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!o.name || !*o.name || optind < argc) {
		usage(stderr);
		return 2;
	}

	snprintf(portstr, sizeof(portstr), "%u", o.port);
	err = getaddrinfo(o.dest, portstr, &hints, &ai);
	if (err) {
		fprintf(stderr, PROG ": --dest %s: %s\n", o.dest, gai_strerror(err));
		return 2;
	}
	if (o.sink && open_sink(ai, &o) < 0)
		return 1;

	/* Before any thread exists: threads inherit the comm at creation, and
	 * renaming later would only rename the main thread. */
	if (prctl(PR_SET_NAME, o.name, 0, 0, 0)) {
		fprintf(stderr, PROG ": prctl(PR_SET_NAME): %s\n", strerror(errno));
		return 1;
	}
	prctl(PR_GET_NAME, comm, 0, 0, 0);

	/* Workers must not take SIGTERM/SIGINT; the main thread waits for them
	 * with sigtimedwait() so the exit status is 0. */
	sigset_t term;
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigaddset(&term, SIGINT);
	sigaddset(&term, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &term, NULL);

	for (unsigned i = 0; i < o.threads; i++) {
		struct worker *w = &workers[i];
		w->index = i;
		w->o = &o;
		memcpy(&w->dst, ai->ai_addr, ai->ai_addrlen);
		w->dst_len = ai->ai_addrlen;
		err = pthread_create(&w->thread, NULL, worker_main, w);
		if (err) {
			fprintf(stderr, PROG ": pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	freeaddrinfo(ai);

	pthread_mutex_lock(&mu);
	while (started < o.threads)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);

	/* The name printed is the kernel's (truncated to 15 bytes), i.e. what
	 * a trace_pipe reader will see. */
	printf("{\"name\":");
	json_string(stdout, comm);
	printf(",\"pid\":%d,\"tids\":[", (int)getpid());
	for (unsigned i = 0; i < o.threads; i++)
		printf("%s%d", i ? "," : "", (int)workers[i].tid);
	printf("]}\n");
	fflush(stdout);

	/* Traffic starts only after the JSON line, so a test that reads it
	 * first cannot miss the first packets. */
	pthread_mutex_lock(&mu);
	go = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	double start = now_s(), end = start + o.seconds;

	for (;;) {
		struct timespec tick = { 0, 50 * 1000000L };
		int sig = sigtimedwait(&term, NULL, &tick);

		if (sig > 0)
			return 0;
		if (o.seconds && now_s() >= end)
			atomic_store(&stop, true);
		pthread_mutex_lock(&mu);
		bool done = finished == o.threads;
		pthread_mutex_unlock(&mu);
		if (done && !o.linger)
			break;
	}
	for (unsigned i = 0; i < o.threads; i++)
		pthread_join(workers[i].thread, NULL);
	if (o.seconds)
		print_summary(workers, o.threads, now_s() - start);
	return 0;
}
