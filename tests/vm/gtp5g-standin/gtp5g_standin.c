// SPDX-License-Identifier: GPL-2.0
/*
 * TEST STAND-IN for free5gc's gtp5g: NOT gtp5g and not a user plane to run.
 *
 * gtp5g is in no package registry, so gtp5g-operator's VM tests load this
 * module in its place (scripts/test-vm.sh; GTP5G_KO=FILE loads a real one).
 * It is named gtp5g, carries module BTF, and has gtp5g's names and
 * signatures for every function gtp5g-tracer probes, on the paths where
 * gtp5g runs them:
 *
 *   uplink:   UDP encap socket on N3 port 2152, encap_rcv gtp5g_encap_recv
 *             -> pdr_find_by_gtp1u -> policePacket -> decap, netif_rx
 *   downlink: the net device's ndo_start_xmit gtp5g_dev_xmit
 *             -> gtp5g_handle_skb_ipv4 -> policePacket -> ip4_find_route
 *             -> gtp5g_xmit_skb_ipv4 -> gtp5g_push_header -> UDP to the gNB
 *
 * so a G-PDU sent over loopback, or an IP packet routed into the device,
 * reaches them in the sending thread's context, as on a one-host testbed.
 * Every probed function is noinline: inlined into its caller, its own copy
 * would still attach, yet never run. There is no PFCP: one uplink PDR matches every TEID except 0 (so both
 * lookup outcomes can be produced), one downlink PDR sends everything to
 * gnb_addr:gnb_port with TEID dl_teid, and the policer never drops.
 */
#include <linux/if_arp.h>
#include <linux/inet.h>
#include <linux/ip.h>
#include <linux/module.h>
#include <linux/udp.h>
#include <linux/version.h>
#include <net/ip.h>
#include <net/ip_tunnels.h>
#include <net/udp.h>
#include <net/udp_tunnel.h>

#include "gtp5g_standin.h"

#define GTP_V1 1
#define GTP_FLAGS_V1_PT 0x30
#define GTP_FLAG_OPTIONAL 0x07 /* E, S, PN: the 4 optional octets follow */
#define GTP_FLAG_E 0x04
#define GTP_TPDU 0xff
#define GTP1_HLEN 8
#define GTP1_OPT_LEN 4
#define GTP_OVERHEAD (sizeof(struct iphdr) + sizeof(struct udphdr) + GTP1_HLEN)
/* 3GPP TS 29.244 apply action: what gtp5g_handle_skb_ipv4 returns. */
#define FAR_ACTION_FORW 0x02

/* The UDP tunnel API takes the struct sock from 7.1 on, the struct socket
 * before. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(7, 1, 0)
#define TUNNEL_SOCK(sk) (sk)
#else
#define TUNNEL_SOCK(sk) ((sk)->sk_socket)
#endif

struct gtp1_hdr {
	u8 flags;
	u8 type;
	__be16 length;
	__be32 tid;
} __packed;

static char *n3_addr = "0.0.0.0";
module_param(n3_addr, charp, 0444);
MODULE_PARM_DESC(n3_addr, "IPv4 address the N3 socket binds (default 0.0.0.0)");
static ushort port = 2152;
module_param(port, ushort, 0444);
MODULE_PARM_DESC(port, "N3 GTP-U UDP port (default 2152)");
static char *gnb_addr = "127.0.0.1";
module_param(gnb_addr, charp, 0444);
MODULE_PARM_DESC(gnb_addr, "gNB address the downlink is sent to (default 127.0.0.1)");
static ushort gnb_port = 2152;
module_param(gnb_port, ushort, 0444);
MODULE_PARM_DESC(gnb_port, "gNB GTP-U port (default 2152)");
static uint dl_teid = 1;
module_param(dl_teid, uint, 0444);
MODULE_PARM_DESC(dl_teid, "TEID of every downlink G-PDU (default 1)");
static char *ifname = "upfgtp";
module_param(ifname, charp, 0444);
MODULE_PARM_DESC(ifname, "name of the net device (default upfgtp, as free5gc's UPF)");

static struct net_device *standin_dev;

/* Length of the GTP-U header at `off` with its optional octets and
 * extension headers (each a length octet in 4-octet units, ending with the
 * next type), or -1 when the packet is shorter than it says. */
static int gtp1u_hdrlen(struct sk_buff *skb, unsigned int off)
{
	u8 flags = skb->data[off];
	unsigned int len = GTP1_HLEN, ext;
	u8 next;

	if (!(flags & GTP_FLAG_OPTIONAL))
		return len;
	len += GTP1_OPT_LEN;
	if (!pskb_may_pull(skb, off + len))
		return -1;
	next = (flags & GTP_FLAG_E) ? skb->data[off + len - 1] : 0;
	while (next) {
		if (!pskb_may_pull(skb, off + len + 1))
			return -1;
		ext = skb->data[off + len] * 4;
		if (!ext || !pskb_may_pull(skb, off + len + ext))
			return -1;
		len += ext;
		next = skb->data[off + len - 1];
	}
	return len;
}

noinline Color policePacket(TrafficPolicer *p, int pktLen)
{
	/* No QER rate: every packet is in profile. The counts keep the call
	 * real work the compiler cannot drop. */
	atomic64_inc(&p->packets);
	atomic64_add(pktLen, &p->bytes);
	return Green;
}

noinline struct pdr *pdr_find_by_gtp1u(struct gtp5g_dev *gtp, struct sk_buff *skb,
			      unsigned int hdrlen, u32 teid, u8 type)
{
	if (type != GTP_TPDU || !teid || skb->len < hdrlen)
		return NULL;
	return &gtp->ul_pdr;
}

/* Decapsulates the T-PDU and delivers it as received on the device. */
static int gtp5g_rx(struct gtp5g_dev *gtp, struct sk_buff *skb, unsigned int hdrlen)
{
	bool xnet = !net_eq(sock_net(gtp->sk1u), dev_net(gtp->dev));

	if (iptunnel_pull_header(skb, hdrlen, htons(ETH_P_IP), xnet) ||
	    !pskb_may_pull(skb, sizeof(struct iphdr)) || ((struct iphdr *)skb->data)->version != 4) {
		gtp->dev->stats.rx_dropped++;
		kfree_skb(skb);
		return 0;
	}
	skb_reset_network_header(skb);
	skb_reset_mac_header(skb);
	skb->dev = gtp->dev;
	skb->pkt_type = PACKET_HOST;
	gtp->dev->stats.rx_packets++;
	gtp->dev->stats.rx_bytes += skb->len;
	netif_rx(skb);
	return 0;
}

/* Returns 0: the packet is consumed (delivered or dropped), never handed
 * to the socket, which has no reader. */
noinline int gtp5g_encap_recv(struct sock *sk, struct sk_buff *skb)
{
	struct gtp5g_dev *gtp = rcu_dereference_sk_user_data(sk);
	unsigned int off = sizeof(struct udphdr);
	struct gtp1_hdr *gtp1;
	struct pdr *pdr;
	int hdrlen;
	u32 teid;
	u8 type;

	if (!gtp)
		goto free;
	if (!pskb_may_pull(skb, off + GTP1_HLEN))
		goto drop;
	gtp1 = (struct gtp1_hdr *)(skb->data + off);
	if ((gtp1->flags >> 5) != GTP_V1)
		goto drop;
	type = gtp1->type;
	teid = ntohl(gtp1->tid);
	hdrlen = gtp1u_hdrlen(skb, off);
	if (hdrlen < 0)
		goto drop;
	pdr = pdr_find_by_gtp1u(gtp, skb, off + hdrlen, teid, type);
	if (!pdr || policePacket(&pdr->policer, skb->len - off - hdrlen) == Red)
		goto drop;
	return gtp5g_rx(gtp, skb, off + hdrlen);
drop:
	gtp->dev->stats.rx_dropped++;
free:
	kfree_skb(skb);
	return 0;
}

noinline void gtp5g_push_header(struct sk_buff *skb, struct gtp5g_pktinfo *pktinfo)
{
	unsigned int payload = skb->len;
	struct gtp1_hdr *gtp1 = skb_push(skb, sizeof(*gtp1));

	gtp1->flags = GTP_FLAGS_V1_PT;
	gtp1->type = GTP_TPDU;
	gtp1->length = htons(payload);
	gtp1->tid = htonl(pktinfo->teid);
}

noinline void gtp5g_xmit_skb_ipv4(struct sk_buff *skb, struct gtp5g_pktinfo *pktinfo)
{
	struct rtable *rt = pktinfo->rt;
	bool xnet = !net_eq(sock_net(pktinfo->sk), dev_net(pktinfo->dev));
	u8 tos = pktinfo->iph->tos;

	gtp5g_push_header(skb, pktinfo);
	udp_tunnel_xmit_skb(rt, pktinfo->sk, skb, pktinfo->fl4.saddr, pktinfo->fl4.daddr, tos,
			    ip4_dst_hoplimit(&rt->dst), 0, pktinfo->gtph_port,
			    pktinfo->gtph_port, xnet, false
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 16, 0)
			    , 0
#endif
	);
}

noinline struct rtable *ip4_find_route(struct sk_buff *skb, struct iphdr *iph,
			      struct sock *sk, struct net_device *gtp_dev,
			      __be32 saddr, __be32 daddr, struct flowi4 *fl4)
{
	struct rtable *rt;

	memset(fl4, 0, sizeof(*fl4));
	fl4->flowi4_oif = sk->sk_bound_dev_if;
	fl4->daddr = daddr;
	fl4->saddr = saddr ? saddr : inet_sk(sk)->inet_saddr;
	fl4->flowi4_proto = IPPROTO_UDP;
	rt = ip_route_output_key(dev_net(gtp_dev), fl4);
	if (IS_ERR(rt)) {
		gtp_dev->stats.tx_carrier_errors++;
		return ERR_PTR(-ENOENT);
	}
	/* A route to the gNB through this device would encapsulate forever. */
	if (rt->dst.dev == gtp_dev) {
		ip_rt_put(rt);
		gtp_dev->stats.collisions++;
		return ERR_PTR(-ELOOP);
	}
	return rt;
}

noinline int gtp5g_handle_skb_ipv4(struct sk_buff *skb, struct net_device *dev,
			  struct gtp5g_pktinfo *pktinfo)
{
	struct gtp5g_dev *gtp = netdev_priv(dev);
	struct iphdr *iph = ip_hdr(skb);
	struct rtable *rt;

	if (policePacket(&gtp->dl_pdr.policer, skb->len) == Red)
		return -ENOBUFS;
	rt = ip4_find_route(skb, iph, gtp->sk1u, dev, 0, gtp->gnb_addr, &pktinfo->fl4);
	if (IS_ERR(rt))
		return PTR_ERR(rt);
	pktinfo->sk = gtp->sk1u;
	pktinfo->iph = iph;
	pktinfo->rt = rt;
	pktinfo->teid = gtp->dl_pdr.teid;
	pktinfo->dev = dev;
	pktinfo->gtph_port = gtp->gnb_port;
	gtp5g_xmit_skb_ipv4(skb, pktinfo);
	return FAR_ACTION_FORW;
}

noinline netdev_tx_t gtp5g_dev_xmit(struct sk_buff *skb, struct net_device *dev)
{
	struct gtp5g_pktinfo pktinfo;
	unsigned int len = skb->len;

	/* IPv4 only: the stand-in has no IPv6 N3 path. */
	if (skb->protocol != htons(ETH_P_IP) || skb_cow_head(skb, dev->needed_headroom) ||
	    !pskb_may_pull(skb, sizeof(struct iphdr)))
		goto drop;
	skb_reset_inner_headers(skb);
	if (gtp5g_handle_skb_ipv4(skb, dev, &pktinfo) < 0)
		goto drop;
	dev->stats.tx_packets++;
	dev->stats.tx_bytes += len;
	return NETDEV_TX_OK;
drop:
	dev->stats.tx_dropped++;
	dev_kfree_skb(skb);
	return NETDEV_TX_OK;
}

static const struct net_device_ops gtp5g_netdev_ops = {
	.ndo_start_xmit = gtp5g_dev_xmit,
};

static void gtp5g_setup(struct net_device *dev)
{
	dev->netdev_ops = &gtp5g_netdev_ops;
	dev->needs_free_netdev = true;
	dev->type = ARPHRD_NONE;
	dev->flags = IFF_POINTOPOINT | IFF_NOARP | IFF_MULTICAST;
	/* No qdisc: the xmit runs in the sending thread, as gtp5g's does. */
	dev->priv_flags |= IFF_NO_QUEUE;
	dev->hard_header_len = 0;
	dev->addr_len = 0;
	dev->mtu = ETH_DATA_LEN - GTP_OVERHEAD;
	dev->needed_headroom = LL_MAX_HEADER + GTP_OVERHEAD;
}

static int parse_addr(const char *name, const char *text, __be32 *addr)
{
	if (in4_pton(text, -1, (u8 *)addr, -1, NULL))
		return 0;
	pr_err("gtp5g stand-in: %s=%s is not an IPv4 address\n", name, text);
	return -EINVAL;
}

static int __init gtp5g_standin_init(void)
{
	struct udp_port_cfg ucfg = { .family = AF_INET, .local_udp_port = htons(port) };
	struct udp_tunnel_sock_cfg tcfg = { .encap_type = UDP_ENCAP_GTP1U,
					    .encap_rcv = gtp5g_encap_recv };
	struct net_device *dev;
	struct gtp5g_dev *gtp;
	struct socket *sock;
	__be32 n3, gnb;
	int err;

	if (parse_addr("n3_addr", n3_addr, &n3) || parse_addr("gnb_addr", gnb_addr, &gnb))
		return -EINVAL;
	dev = alloc_netdev(sizeof(*gtp), ifname, NET_NAME_USER, gtp5g_setup);
	if (!dev)
		return -ENOMEM;
	gtp = netdev_priv(dev);
	gtp->dev = dev;
	gtp->gnb_addr = gnb;
	gtp->gnb_port = htons(gnb_port);
	gtp->dl_pdr.teid = dl_teid;
	ucfg.local_ip.s_addr = n3;
	err = udp_sock_create(&init_net, &ucfg, &sock);
	if (err) {
		pr_err("gtp5g stand-in: cannot bind %s:%u: %d\n", n3_addr, port, err);
		free_netdev(dev);
		return err;
	}
	tcfg.sk_user_data = gtp;
	setup_udp_tunnel_sock(&init_net, TUNNEL_SOCK(sock->sk), &tcfg);
	gtp->sk1u = sock->sk;
	err = register_netdev(dev);
	if (err) {
		udp_tunnel_sock_release(TUNNEL_SOCK(sock->sk));
		free_netdev(dev);
		return err;
	}
	standin_dev = dev;
	pr_info("gtp5g TEST STAND-IN: %s, N3 %s:%u, downlink to %s:%u\n", dev->name, n3_addr,
		port, gnb_addr, gnb_port);
	return 0;
}

static void __exit gtp5g_standin_exit(void)
{
	struct gtp5g_dev *gtp = netdev_priv(standin_dev);

	/* The socket first, so no packet reaches a device being freed;
	 * unregistering waits for the receivers still running. */
	udp_tunnel_sock_release(TUNNEL_SOCK(gtp->sk1u));
	unregister_netdev(standin_dev);
}

module_init(gtp5g_standin_init);
module_exit(gtp5g_standin_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("TEST STAND-IN for free5gc gtp5g (gtp5g-operator VM tests), not the real gtp5g");
