// SPDX-License-Identifier: GPL-2.0
/*
 * gtp5g-link: test-only. Gives a real gtp5g module what free5gc's UPF gives
 * it, so the VM test bed can send it traffic: a UDP socket bound to the N3
 * address (port 2152) and a gtp5g link created over rtnetlink with that
 * socket's fd (role UPF), brought up.
 *
 *   gtp5g-link ADDR [IFNAME]      (IFNAME: upfgtp)
 *
 * gtp5g turns the socket into its encap socket but does not keep it alive:
 * when the last fd closes, the kernel's encap_destroy detaches it from the
 * link. So, like a UPF, this process keeps the fd: once the link is up it
 * goes to the background and exits when the link is deleted (rmmod gtp5g,
 * ip link del), which frees the N3 port for the next load. The foreground
 * exits 0 only when the link is up; any failure is said and exits 1.
 *
 * Facts (link kind "gtp5g", IFLA_GTP5G_FD1 = 1, IFLA_GTP5G_ROLE = 3 with
 * UPF = 0) are from free5gc/gtp5g's include/link.h; the code is this
 * project's own. No PDR or FAR is installed: uplink G-PDUs reach
 * gtp5g_encap_recv and find no PDR, downlink packets routed to the link
 * reach gtp5g_handle_skb_ipv4 and find none either.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define PROG "gtp5g-link"
#define N3_PORT 2152
#define IFLA_GTP5G_FD1 1
#define IFLA_GTP5G_ROLE 3
#define GTP5G_ROLE_UPF 0
/* After an unload the previous holder exits on the link's deletion; its
 * port may still be bound for a moment (longer in an emulated guest). */
#define BIND_WAIT_MS 10000

static void die(const char *what)
{
	fprintf(stderr, PROG ": %s: %s\n", what, strerror(errno));
	exit(1);
}

struct request {
	struct nlmsghdr nh;
	struct ifinfomsg ifi;
	char attrs[256];
};

static struct rtattr *put(struct request *r, unsigned short type, const void *data, size_t len)
{
	struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));

	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

static void put_u32(struct request *r, unsigned short type, __u32 v)
{
	put(r, type, &v, sizeof(v));
}

/* A nest's length covers what was put after it. */
static void end_nest(struct request *r, struct rtattr *nest)
{
	nest->rta_len = (char *)r + r->nh.nlmsg_len - (char *)nest;
}

static int n3_socket(const char *addr)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(N3_PORT) };
	char what[64];
	int fd, waited;

	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, PROG ": %s: not an IPv4 address\n", addr);
		exit(2);
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("UDP socket");
	for (waited = 0; bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0; waited += 50) {
		if (errno != EADDRINUSE || waited >= BIND_WAIT_MS) {
			snprintf(what, sizeof(what), "bind %s:%d", addr, N3_PORT);
			die(what);
		}
		nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000000 }, NULL);
	}
	return fd;
}

/* Subscribed to link events before the link exists, so its deletion is
 * never missed. */
static int rtnl_socket(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("rtnetlink socket");
	return fd;
}

static void new_link(int nl, const char *ifname, int n3)
{
	struct request r = {
		.nh = { .nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
			.nlmsg_type = RTM_NEWLINK, .nlmsg_seq = 1,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK },
		.ifi = { .ifi_family = AF_UNSPEC, .ifi_flags = IFF_UP, .ifi_change = IFF_UP },
	};
	struct rtattr *info, *data;

	put(&r, IFLA_IFNAME, ifname, strlen(ifname) + 1);
	info = put(&r, IFLA_LINKINFO, NULL, 0);
	put(&r, IFLA_INFO_KIND, "gtp5g", sizeof("gtp5g"));
	data = put(&r, IFLA_INFO_DATA, NULL, 0);
	put_u32(&r, IFLA_GTP5G_FD1, n3);
	put_u32(&r, IFLA_GTP5G_ROLE, GTP5G_ROLE_UPF);
	end_nest(&r, data);
	end_nest(&r, info);
	if (send(nl, &r, r.nh.nlmsg_len, 0) < 0)
		die("RTM_NEWLINK kind gtp5g: send");
}

/* The kernel's answer to request 1 (link events may come first). */
static void wait_ack(int nl)
{
	char buf[8192];
	struct nlmsghdr *nh;
	ssize_t n;

	for (;;) {
		n = recv(nl, buf, sizeof(buf), 0);
		if (n < 0)
			die("RTM_NEWLINK kind gtp5g: recv");
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, n); nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_type != NLMSG_ERROR || nh->nlmsg_seq != 1)
				continue;
			errno = -((struct nlmsgerr *)NLMSG_DATA(nh))->error;
			if (errno)
				die("RTM_NEWLINK kind gtp5g");
			return;
		}
	}
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
static void hold_until_deleted(int nl, int ifindex)
{
	char buf[8192], name[IF_NAMESIZE];
	ssize_t n;

	for (;;) {
		n = recv(nl, buf, sizeof(buf), 0);
		if (n < 0 && errno == ENOBUFS && if_indextoname(ifindex, name))
			continue;
		if (n < 0 || link_deleted(buf, n, ifindex))
			exit(0);
	}
}

/* The foreground's exit says the link is up; the background keeps the fd
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
	const char *ifname = argc > 2 ? argv[2] : "upfgtp";
	int n3, nl, ifindex;

	if (argc < 2 || argc > 3 || strlen(ifname) >= IF_NAMESIZE) {
		fprintf(stderr, "usage: " PROG " ADDR [IFNAME]\n");
		return 2;
	}
	n3 = n3_socket(argv[1]);
	nl = rtnl_socket();
	new_link(nl, ifname, n3);
	wait_ack(nl);
	ifindex = if_nametoindex(ifname);
	if (!ifindex)
		die(ifname);
	printf(PROG ": %s (ifindex %d) up, N3 socket %s:%d held in the background\n",
	       ifname, ifindex, argv[1], N3_PORT);
	fflush(stdout);
	background();
	hold_until_deleted(nl, ifindex);
	return 0;
}
