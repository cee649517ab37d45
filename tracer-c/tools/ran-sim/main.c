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
 * and a JSON summary with packet counts, rates and the UEs' round-trip
 * times (each ping carries its send time; rtt.c) on exit.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "ran-sim.h"
#include "cli.h"

static void summary(const struct run *r, double elapsed)
{
	const struct counts *c = r->counts;
	unsigned long sent = 0, received = 0, hb = 0, hb_acks = 0, acks = 0, rrc = 0;
	static struct rtt rtt;

	for (unsigned i = 0; i < r->o.ues + r->o.idle_ues; i++) {
		rtt_add(&rtt, &c->ue[i].rtt);
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
	       "\"pdu_acks\":%lu,\"rrc_received\":%lu,\"uplink_pps\":%.1f,\"pps\":%.1f,",
	       elapsed, r->o.ues, r->o.idle_ues, r->o.rate, sent,
	       read_count(&c->gnb.rls_data_in), read_count(&c->gnb.gtp_ul_sent),
	       read_count(&c->upf.echoed), read_count(&c->gnb.gtp_dl_in),
	       read_count(&c->gnb.rls_data_out), received, hb, hb_acks, acks, rrc,
	       elapsed > 0 ? sent / elapsed : 0, elapsed > 0 ? received / elapsed : 0);
	rtt_json(stdout, &rtt);
	printf("}\n");
	fflush(stdout);
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
		   "       (0: until SIGINT/SIGTERM)] [--warmup S=0 (replies to pings of the first S\n"
		   "       seconds are not timed)] [--gnb ADDR=127.0.0.1] [--rls-port " WIRE_STR(RLS_PORT) "]\n"
		   "       [--upf ADDR=127.0.0.1] [--gtp-port " WIRE_STR(GTPU_PORT) "]\n");
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
		{ "warmup", required_argument, NULL, 'W' },
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
		case 'W': bad = number("--warmup", 0, 1000000, &o->warmup_s); break;
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
	static struct run r = { .o = { .ues = 1, .rate = 10, .window = 32, .rls_port = RLS_PORT,
				       .gtp_port = GTPU_PORT, .gnb_host = "127.0.0.1",
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
