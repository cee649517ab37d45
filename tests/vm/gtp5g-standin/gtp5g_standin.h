/* SPDX-License-Identifier: GPL-2.0 */
/*
 * TEST STAND-IN for free5gc's gtp5g, not gtp5g. The functions gtp5g-tracer
 * probes, with gtp5g's names and signatures (free5gc/gtp5g src/gtpu/encap.c,
 * src/gtpu/pktinfo.c, src/pfcp/pdr.c, src/qos/trTCM.c): fentry reads the
 * arguments by position, so the signatures must match the real module's.
 */
#ifndef GTP5G_STANDIN_H
#define GTP5G_STANDIN_H

#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <net/route.h>
#include <net/sock.h>

/* gtp5g's colour and policer types are typedefs (trTCM.h). */
typedef enum { Green, Yellow, Red } Color;

typedef struct {
	atomic64_t bytes;
	atomic64_t packets;
} TrafficPolicer;

struct pdr {
	u32 teid;
	TrafficPolicer policer;
};

struct gtp5g_dev {
	struct net_device *dev;
	struct sock *sk1u;
	struct pdr ul_pdr;
	struct pdr dl_pdr;
	__be32 gnb_addr;
	__be16 gnb_port;
};

/* The fields the tracer reads (dev) and the ones the transmit path needs. */
struct gtp5g_pktinfo {
	struct sock *sk;
	struct iphdr *iph;
	struct flowi4 fl4;
	struct rtable *rt;
	u32 teid;
	struct net_device *dev;
	__be16 gtph_port;
};

int gtp5g_encap_recv(struct sock *sk, struct sk_buff *skb);
struct pdr *pdr_find_by_gtp1u(struct gtp5g_dev *gtp, struct sk_buff *skb,
			      unsigned int hdrlen, u32 teid, u8 type);
Color policePacket(TrafficPolicer *p, int pktLen);
netdev_tx_t gtp5g_dev_xmit(struct sk_buff *skb, struct net_device *dev);
int gtp5g_handle_skb_ipv4(struct sk_buff *skb, struct net_device *dev,
			  struct gtp5g_pktinfo *pktinfo);
struct rtable *ip4_find_route(struct sk_buff *skb, struct iphdr *iph,
			      struct sock *sk, struct net_device *gtp_dev,
			      __be32 saddr, __be32 daddr, struct flowi4 *fl4);
void gtp5g_xmit_skb_ipv4(struct sk_buff *skb, struct gtp5g_pktinfo *pktinfo);
void gtp5g_push_header(struct sk_buff *skb, struct gtp5g_pktinfo *pktinfo);

#endif
