// SPDX-License-Identifier: GPL-2.0
/*
 * gtp5g-link: test-only. Gives a real gtp5g module what free5gc's UPF gives
 * it, so the VM test bed can send it traffic: a UDP socket bound to the N3
 * address (port 2152), a gtp5g link created over rtnetlink with that
 * socket's fd (role UPF), brought up, and optionally one session's rules
 * over gtp5g's generic netlink family.
 *
 *   gtp5g-link [-t TEID]... [-d UE,GNB,TEID] ADDR [IFNAME]   (IFNAME: upfgtp)
 *
 *   -t TEID          an uplink PDR for G-PDUs to ADDR with TEID: outer header
 *                    removed, forwarded into the link
 *   -d UE,GNB,TEID   a downlink PDR for packets to UE routed into the link:
 *                    GTP-U with TEID to GNB:2152
 *
 * With any rule, all share one QER with a maximum bit rate (1 Gbit/s) far
 * above what a test sends, and gtp5g's QoS is turned on (/proc/gtp5g/qos), so packets
 * pass its policer as on a UPF enforcing a session's MBR.
 *
 * gtp5g turns the socket into its encap socket but does not keep it alive:
 * when the last fd closes, the kernel's encap_destroy detaches it from the
 * link. So, like a UPF, this process keeps the fd: once all is set up it
 * goes to the background and exits when the link is deleted (rmmod gtp5g,
 * ip link del), which frees the N3 port for the next load. The foreground
 * exits 0 only then; any failure is said and exits 1.
 *
 * Facts (link kind "gtp5g" and its attributes, the generic netlink family
 * "gtp5g", its commands and attributes, the FAR action and outer header
 * values) are from free5gc/gtp5g's include/ and src/genl/; the code is this
 * project's own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define PROG "gtp5g-link"
#define N3_PORT 2152
/* include/link.h */
#define IFLA_GTP5G_FD1 1
#define IFLA_GTP5G_ROLE 3
#define GTP5G_ROLE_UPF 0
/* include/genl*.h */
enum { CMD_ADD_PDR = 1, CMD_ADD_FAR, CMD_ADD_QER };
enum { A_LINK = 1, A_ID = 3 };
enum { PDR_PRECEDENCE = 4, PDR_PDI, PDR_OUTER_HEADER_REMOVAL, PDR_FAR_ID, PDR_QER_ID = 10 };
enum { PDI_UE_ADDR_IPV4 = 1, PDI_F_TEID, PDI_SRC_INTF = 4 };
enum { F_TEID_I_TEID = 1, F_TEID_GTPU_ADDR_IPV4 };
enum { FAR_APPLY_ACTION = 4, FAR_FORWARDING_PARAMETER };
enum { FWD_OUTER_HEADER_CREATION = 1 };
enum { OHC_DESCRIPTION = 1, OHC_O_TEID, OHC_PEER_ADDR_IPV4, OHC_PORT };
enum { QER_GATE = 4, QER_MBR, QER_QFI = 9 };
enum { MBR_UL_HIGH32 = 1, MBR_UL_LOW8, MBR_DL_HIGH32, MBR_DL_LOW8 };
#define SRC_INTF_ACCESS 0
#define SRC_INTF_CORE 1
#define FAR_ACTION_FORW 0x02
#define OHR_GTPU_UDP_IPV4 0
#define OHC_GTPU_UDP_IPV4 0x0100
#define QER_ID 1
#define MBR_KBPS 1000000
/* After an unload the previous holder exits on the link's deletion; its
 * port may still be bound for a moment (longer in an emulated guest). */
#define BIND_WAIT_MS 10000
#define MAX_TEIDS 16

static void die(const char *what)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(errno));
	exit(1);
}

static void usage(void)
{
	fprintf(stderr, "usage: " PROG " [-t TEID]... [-d UE,GNB,TEID] ADDR [IFNAME]\n");
	exit(2);
}

struct msg {
	struct nlmsghdr nh;
	char body[1024];
};

static void *tail(struct msg *m)
{
	return (char *)m + NLMSG_ALIGN(m->nh.nlmsg_len);
}

/* A request with its fixed header (ifinfomsg, genlmsghdr) copied in. */
static void start(struct msg *m, __u16 type, __u16 flags, const void *hdr, size_t len)
{
	static __u32 seq;

	m->nh = (struct nlmsghdr){ .nlmsg_len = NLMSG_LENGTH(len), .nlmsg_type = type,
				   .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags,
				   .nlmsg_seq = ++seq };
	memcpy(NLMSG_DATA(&m->nh), hdr, len);
}

static struct rtattr *put(struct msg *m, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = tail(m);

	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	m->nh.nlmsg_len = NLMSG_ALIGN(m->nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

static void put_u8(struct msg *m, unsigned short type, __u8 v) { put(m, type, &v, sizeof(v)); }
static void put_u16(struct msg *m, unsigned short type, __u16 v) { put(m, type, &v, sizeof(v)); }
static void put_u32(struct msg *m, unsigned short type, __u32 v) { put(m, type, &v, sizeof(v)); }

/* gtp5g parses its nests strictly (nla_parse_nested): without the flag
 * they are refused (EINVAL) or, in a QER, silently ignored. */
static struct rtattr *nest(struct msg *m, unsigned short type)
{
	return put(m, type | NLA_F_NESTED, NULL, 0);
}

/* A nest's length covers what was put after it. */
static void end_nest(struct msg *m, struct rtattr *nest)
{
	nest->rta_len = (char *)tail(m) - (char *)nest;
}

/* Sends M and waits for the kernel's answer to it (other messages, such as
 * link events, may come first); the reply of a GET is handed to GOT. */
static void transact(int nl, struct msg *m, const char *what, void (*got)(struct nlmsghdr *))
{
	char buf[8192];
	struct nlmsghdr *nh;
	ssize_t n;

	if (send(nl, m, m->nh.nlmsg_len, 0) < 0)
		die(what);
	for (;;) {
		n = recv(nl, buf, sizeof(buf), 0);
		if (n < 0)
			die(what);
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, n); nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_seq != m->nh.nlmsg_seq)
				continue;
			if (nh->nlmsg_type != NLMSG_ERROR) {
				if (got)
					got(nh);
				continue;
			}
			errno = -((struct nlmsgerr *)NLMSG_DATA(nh))->error;
			if (errno)
				die(what);
			return;
		}
	}
}

static int n3_socket(struct in_addr addr)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(N3_PORT), .sin_addr = addr };
	char what[64];
	int fd, waited;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("UDP socket");
	for (waited = 0; bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0; waited += 50) {
		if (errno != EADDRINUSE || waited >= BIND_WAIT_MS) {
			snprintf(what, sizeof(what), "bind %s:%d", inet_ntoa(addr), N3_PORT);
			die(what);
		}
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
	}
	return fd;
}

static int netlink_socket(int protocol, unsigned groups)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = groups };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(protocol == NETLINK_ROUTE ? "rtnetlink socket" : "generic netlink socket");
	return fd;
}

static void new_link(int rtnl, const char *ifname, int n3)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP };
	struct rtattr *info, *data;
	struct msg m;

	start(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
	put(&m, IFLA_IFNAME, ifname, strlen(ifname) + 1);
	info = nest(&m, IFLA_LINKINFO);
	put(&m, IFLA_INFO_KIND, "gtp5g", sizeof("gtp5g"));
	data = nest(&m, IFLA_INFO_DATA);
	put_u32(&m, IFLA_GTP5G_FD1, n3);
	put_u32(&m, IFLA_GTP5G_ROLE, GTP5G_ROLE_UPF);
	end_nest(&m, data);
	end_nest(&m, info);
	transact(rtnl, &m, "RTM_NEWLINK kind gtp5g", NULL);
}

static __u16 family_id;

static void got_family(struct nlmsghdr *nh)
{
	struct rtattr *a = (struct rtattr *)((char *)NLMSG_DATA(nh) + GENL_HDRLEN);
	int len = nh->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);

	for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
		if (a->rta_type == CTRL_ATTR_FAMILY_ID)
			memcpy(&family_id, RTA_DATA(a), sizeof(family_id));
}

static void resolve_family(int genl)
{
	struct genlmsghdr g = { .cmd = CTRL_CMD_GETFAMILY, .version = 1 };
	struct msg m;

	start(&m, GENL_ID_CTRL, 0, &g, sizeof(g));
	put(&m, CTRL_ATTR_FAMILY_NAME, "gtp5g", sizeof("gtp5g"));
	transact(genl, &m, "generic netlink family gtp5g", got_family);
	if (!family_id) {
		errno = ENOENT;
		die("generic netlink family gtp5g");
	}
}

/* gtp5g's PDR parser skips the first attribute, which must be the link. */
static void start_rule(struct msg *m, __u8 cmd, int ifindex, __u32 id)
{
	struct genlmsghdr g = { .cmd = cmd };

	start(m, family_id, NLM_F_EXCL, &g, sizeof(g));
	put_u32(m, A_LINK, ifindex);
	put_u32(m, A_ID, id);
}

static void add_qer(int genl, int ifindex)
{
	struct rtattr *mbr;
	struct msg m;

	start_rule(&m, CMD_ADD_QER, ifindex, QER_ID);
	put_u8(&m, QER_GATE, 0);
	/* 1 Gbit/s each way, far above any test's rate. gtp5g joins the
	 * halves as kbit/s in 32 bits (HIGH32 << 8 | LOW8), and its policer
	 * multiplies the byte rate by the nanoseconds since the last packet:
	 * a higher rate would overflow both. */
	mbr = nest(&m, QER_MBR);
	put_u32(&m, MBR_UL_HIGH32, MBR_KBPS >> 8);
	put_u8(&m, MBR_UL_LOW8, MBR_KBPS & 0xff);
	put_u32(&m, MBR_DL_HIGH32, MBR_KBPS >> 8);
	put_u8(&m, MBR_DL_LOW8, MBR_KBPS & 0xff);
	end_nest(&m, mbr);
	put_u8(&m, QER_QFI, 9);
	transact(genl, &m, "GTP5G_CMD_ADD_QER", NULL);
}

/* A forwarding FAR: into the link (no peer) or GTP-U to the peer. */
static void add_far(int genl, int ifindex, __u32 id, const struct in_addr *peer, __u32 teid)
{
	struct rtattr *fwd, *ohc;
	struct msg m;

	start_rule(&m, CMD_ADD_FAR, ifindex, id);
	put_u8(&m, FAR_APPLY_ACTION, FAR_ACTION_FORW);
	if (peer) {
		fwd = nest(&m, FAR_FORWARDING_PARAMETER);
		ohc = nest(&m, FWD_OUTER_HEADER_CREATION);
		put_u16(&m, OHC_DESCRIPTION, OHC_GTPU_UDP_IPV4);
		put_u32(&m, OHC_O_TEID, teid);
		put(&m, OHC_PEER_ADDR_IPV4, peer, sizeof(*peer));
		put_u16(&m, OHC_PORT, N3_PORT);
		end_nest(&m, ohc);
		end_nest(&m, fwd);
	}
	transact(genl, &m, "GTP5G_CMD_ADD_FAR", NULL);
}

/* PDR and FAR ids are the same number; each PDR has its own FAR. */
static void add_uplink(int genl, int ifindex, __u32 id, struct in_addr n3, __u32 teid)
{
	struct rtattr *pdi, *fteid;
	struct msg m;

	add_far(genl, ifindex, id, NULL, 0);
	start_rule(&m, CMD_ADD_PDR, ifindex, id);
	put_u32(&m, PDR_PRECEDENCE, 255);
	pdi = nest(&m, PDR_PDI);
	put_u8(&m, PDI_SRC_INTF, SRC_INTF_ACCESS);
	fteid = nest(&m, PDI_F_TEID);
	put_u32(&m, F_TEID_I_TEID, teid);
	put(&m, F_TEID_GTPU_ADDR_IPV4, &n3, sizeof(n3));
	end_nest(&m, fteid);
	end_nest(&m, pdi);
	put_u8(&m, PDR_OUTER_HEADER_REMOVAL, OHR_GTPU_UDP_IPV4);
	put_u32(&m, PDR_FAR_ID, id);
	put_u32(&m, PDR_QER_ID, QER_ID);
	transact(genl, &m, "GTP5G_CMD_ADD_PDR (uplink)", NULL);
}

static void add_downlink(int genl, int ifindex, __u32 id, struct in_addr ue, struct in_addr gnb, __u32 teid)
{
	struct rtattr *pdi;
	struct msg m;

	add_far(genl, ifindex, id, &gnb, teid);
	start_rule(&m, CMD_ADD_PDR, ifindex, id);
	put_u32(&m, PDR_PRECEDENCE, 255);
	pdi = nest(&m, PDR_PDI);
	put_u8(&m, PDI_SRC_INTF, SRC_INTF_CORE);
	put(&m, PDI_UE_ADDR_IPV4, &ue, sizeof(ue));
	end_nest(&m, pdi);
	put_u32(&m, PDR_FAR_ID, id);
	put_u32(&m, PDR_QER_ID, QER_ID);
	transact(genl, &m, "GTP5G_CMD_ADD_PDR (downlink)", NULL);
}

static void enable_qos(void)
{
	int fd = open("/proc/gtp5g/qos", O_WRONLY);

	if (fd < 0 || write(fd, "1", 1) != 1)
		die("/proc/gtp5g/qos");
	close(fd);
}

struct session {
	__u32 teids[MAX_TEIDS];
	int n_teids;
	int downlink;
	struct in_addr ue, gnb;
	__u32 dl_teid;
};

static void install(const struct session *s, int ifindex, struct in_addr n3)
{
	int genl, i;

	if (!s->n_teids && !s->downlink)
		return;
	genl = netlink_socket(NETLINK_GENERIC, 0);
	resolve_family(genl);
	add_qer(genl, ifindex);
	for (i = 0; i < s->n_teids; i++)
		add_uplink(genl, ifindex, i + 1, n3, s->teids[i]);
	if (s->downlink)
		add_downlink(genl, ifindex, s->n_teids + 1, s->ue, s->gnb, s->dl_teid);
	enable_qos();
	close(genl);
}

static void parse_addr(const char *text, struct in_addr *addr)
{
	if (inet_pton(AF_INET, text, addr) != 1) {
		fprintf(stderr, PROG ": %s: not an IPv4 address\n", text);
		exit(2);
	}
}

static __u32 parse_teid(const char *text)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(text, &end, 0);
	if (errno || end == text || *end || v > 0xffffffffUL) {
		fprintf(stderr, PROG ": TEID %s: not a 32-bit number\n", text);
		exit(2);
	}
	return v;
}

static void parse_downlink(char *text, struct session *s)
{
	char *ue = strtok(text, ","), *gnb = strtok(NULL, ","), *teid = strtok(NULL, ",");

	if (!teid || strtok(NULL, ","))
		usage();
	parse_addr(ue, &s->ue);
	parse_addr(gnb, &s->gnb);
	s->dl_teid = parse_teid(teid);
	s->downlink = 1;
}

static void parse_args(int argc, char **argv, struct session *s)
{
	int opt;

	while ((opt = getopt(argc, argv, "t:d:")) != -1) {
		if (opt == 't' && s->n_teids < MAX_TEIDS)
			s->teids[s->n_teids++] = parse_teid(optarg);
		else if (opt == 'd')
			parse_downlink(optarg, s);
		else
			usage();
	}
	if (argc - optind < 1 || argc - optind > 2)
		usage();
}

static int link_deleted(const char *buf, ssize_t n, int ifindex)
{
	const struct nlmsghdr *nh;

	for (nh = (const struct nlmsghdr *)buf; NLMSG_OK(nh, n); nh = NLMSG_NEXT(nh, n))
		if (nh->nlmsg_type == RTM_DELLINK &&
		    ((struct ifinfomsg *)NLMSG_DATA(nh))->ifi_index == ifindex)
			return 1;
	return 0;
}

/* Holds the N3 socket until the link is gone. Events lost to a full
 * receive buffer (ENOBUFS) are made up for by asking for the link. */
static void hold_until_deleted(int rtnl, int ifindex)
{
	char buf[8192], name[IF_NAMESIZE];
	ssize_t n;

	for (;;) {
		n = recv(rtnl, buf, sizeof(buf), 0);
		if (n < 0 && errno == ENOBUFS && if_indextoname(ifindex, name))
			continue;
		if (n < 0 || link_deleted(buf, n, ifindex))
			exit(0);
	}
}

/* The foreground's exit says all is set up; the background keeps the fd
 * away from the caller's terminal and pipes. */
static void background(void)
{
	pid_t pid = fork();
	int null;

	if (pid < 0)
		die("fork");
	if (pid > 0)
		exit(0);
	setsid();
	null = open("/dev/null", O_RDWR);
	if (null < 0)
		die("/dev/null");
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	if (null > 2)
		close(null);
}

int main(int argc, char **argv)
{
	struct session s = { 0 };
	const char *ifname;
	struct in_addr n3;
	int fd, rtnl, ifindex;

	parse_args(argc, argv, &s);
	parse_addr(argv[optind], &n3);
	ifname = optind + 1 < argc ? argv[optind + 1] : "upfgtp";
	if (strlen(ifname) >= IF_NAMESIZE)
		usage();
	fd = n3_socket(n3);
	/* Subscribed to link events before the link exists, so its deletion
	 * is never missed. */
	rtnl = netlink_socket(NETLINK_ROUTE, RTMGRP_LINK);
	new_link(rtnl, ifname, fd);
	ifindex = if_nametoindex(ifname);
	if (!ifindex)
		die(ifname);
	install(&s, ifindex, n3);
	printf(PROG ": %s (ifindex %d) up, N3 socket %s:%d held in the background, %d uplink PDRs, %s\n",
	       ifname, ifindex, argv[optind], N3_PORT, s.n_teids, s.downlink ? "1 downlink PDR" : "no downlink PDR");
	fflush(stdout);
	background();
	hold_until_deleted(rtnl, ifindex);
	return 0;
}
