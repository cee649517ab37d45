// SPDX-License-Identifier: GPL-2.0
/*
 * Portable user-plane tracer: needs no gtp5g module, only BTF-enabled
 * tracepoints. It recognises GTP-U packets (UDP to or from gtpu_port) and
 * UERANSIM's RLS user-data packets (UDP to or from rls_port: the nr-ue <->
 * nr-gnb hop, where a real nr-ue never sends GTP-U), IPv4 or IPv6, where they
 * leave (net_dev_queue) or, with --every-event, also where they arrive
 * (netif_receive_skb), on any net device, and prints who was running at that
 * moment. On the sending side that is the thread that called send(); the
 * operator boosts it. GTP-U counts only as G-PDUs (message type 255).
 *
 * Per printed event, four lines (prefix tp/<tracepoint>):
 *   DEV=<ifname>, LEN=<skb->len>
 *   TEID=0x<teid>, TYPE=255                    (GTP-U)
 *   RLS=DATA, PSI=<pdu session id>, LEN=<pdu length>   (RLS)
 *   PID=<tid>, TGID=<pid>, CPU=<cpu>
 *   COMM=<current comm>
 * Which events are printed: see should_print() (gtp5g_dedup.bpf.h).
 */
#include "gtp5g_dedup.bpf.h"
#include "wire.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load (rodata), so the verifier sees a constant. */
const volatile __u16 gtpu_port = GTPU_PORT;
const volatile __u16 rls_port = RLS_PORT;

#define ETH_P_IP_   0x0800
#define ETH_P_IPV6_ 0x86DD
/* Bounded walk over IPv6 extension headers: the verifier needs a fixed bound
 * and real GTP-U traffic rarely carries any. */
#define MAX_IPV6_EXT 4
/* Macros of the kernel's uapi headers, which vmlinux.h cannot carry. */
#define IPPROTO_ICMPV6 58

/* What decides whether a packet is user plane: the UDP header and the
 * payload up to RLS's PDU type (GTP-U's flags, type and TEID lie within).
 * RLS's session id and length are read only for a record that is printed. */
#define MATCH_BYTES (RLS_OFF_PDU_TYPE + 1)
#define L4_BYTES (UDP_HDR_LEN + MATCH_BYTES)

struct pkt_info {
	bool rls;
	__u8 type;   /* GTP-U message type */
	__u32 teid;  /* GTP-U TEID, or the RLS PDU session id */
	__u32 len;   /* RLS PDU length */
	__u32 payload; /* the UDP payload's offset from skb->head */
};

static __always_inline int read_at(void *dst, __u32 len, unsigned char *head,
				   __u32 off)
{
	return bpf_probe_read_kernel(dst, len, head + off);
}

static __always_inline __u32 be32_at(const __u8 *p)
{
	return ((__u32)p[0] << 24) | ((__u32)p[1] << 16) | ((__u32)p[2] << 8) | p[3];
}

/* Only G-PDUs carry user data: echo requests and responses, error
 * indications and end markers flow on an idle path too. Version 1 with the
 * PT bit set is GTP; anything else on the port (GTP' or garbage) is not
 * GTP-U. */
static __always_inline bool gtpu_gpdu(const __u8 *gtp, struct pkt_info *out)
{
	if (GTPU_VERSION(gtp[GTPU_OFF_FLAGS]) != 1 || !(gtp[GTPU_OFF_FLAGS] & GTPU_FLAG_PT) ||
	    gtp[GTPU_OFF_TYPE] != GTPU_GPDU)
		return false;
	out->type = gtp[GTPU_OFF_TYPE];
	out->teid = be32_at(&gtp[GTPU_OFF_TEID]);
	return true;
}

/* Only user data counts: heartbeats, acks and RRC PDUs flow for an idle UE
 * too, and the operator must not boost an idle UE. */
static __always_inline bool rls_data(const __u8 *rls, struct pkt_info *out)
{
	if (rls[RLS_OFF_MAGIC] != RLS_MAGIC || rls[RLS_OFF_MSG_TYPE] != RLS_PDU_TRANSMISSION ||
	    rls[RLS_OFF_PDU_TYPE] != RLS_PDU_DATA)
		return false;
	out->rls = true;
	return true;
}

/* The session id and PDU length of a matched RLS DATA packet (in the linear
 * area: parse_pkt checked). */
static __always_inline void rls_fields(struct sk_buff *skb, struct pkt_info *info)
{
	__u8 f[8];

	if (read_at(f, sizeof(f), skb->head, info->payload + RLS_OFF_PAYLOAD))
		return;
	info->teid = be32_at(&f[0]);
	info->len = be32_at(&f[RLS_OFF_PDU_LEN - RLS_OFF_PAYLOAD]);
}

/* Offset of the UDP header after an IPv6 header whose next header is nh,
 * walking a bounded number of extension headers; 0 when not UDP. */
static __always_inline __u32 ipv6_udp(unsigned char *head, __u32 l4, __u8 nh)
{
#pragma unroll
	for (int i = 0; i < MAX_IPV6_EXT; i++) {
		__u8 ext[8];

		if (nh != 0 && nh != 43 && nh != 44 && nh != 60)
			break;
		if (read_at(ext, sizeof(ext), head, l4))
			return 0;
		if (nh == 44) {
			/* Fragment header: only the first fragment has UDP. */
			if (((ext[2] << 8) | ext[3]) & 0xfff8)
				return 0;
			nh = ext[0];
			l4 += 8;
		} else {
			nh = ext[0];
			l4 += (ext[1] + 1) * 8;
		}
	}
	return nh == IPPROTO_UDP ? l4 : 0;
}

/* A packet sent from a local socket names it: TCP and ICMP (the kernel's
 * own errors included) are out before a byte of the packet is read.
 * Forwarded packets have no socket, raw and packet sockets may carry
 * anything: those are parsed. */
static __always_inline bool surely_not_udp(struct sk_buff *skb)
{
	struct sock *sk = skb->sk;
	__u16 p;

	if (!sk)
		return false;
	p = BPF_CORE_READ_BITFIELD(sk, sk_protocol);
	return p == IPPROTO_TCP || p == IPPROTO_ICMP || p == IPPROTO_ICMPV6;
}

/*
 * Locate the L3 header and parse down to the GTP-U or RLS header.
 *
 * Egress (net_dev_queue): __dev_queue_xmit() has reset the mac header to
 * skb->data, i.e. data points at the link-layer header (14-byte Ethernet on lo
 * and real NICs, nothing on raw-IP devices), so data cannot be used as L3;
 * the IP layer set network_header, which is right for every device type.
 *
 * Ingress (netif_receive_skb): the driver ran eth_type_trans(), which pulled
 * the link-layer header, so data is L3; network_header is only reset by
 * __netif_receive_skb_core() after this tracepoint and may be stale.
 *
 * The common case (no IPv4 options, no IPv6 extension headers) costs one
 * bpf_probe_read_kernel() of what the match needs: the IP header and
 * L4_BYTES, 42 bytes for IPv4, 62 for IPv6. Bytes read past the packet's
 * tail are never used (the tail checks below).
 */
static __always_inline bool parse_pkt(struct sk_buff *skb, bool egress,
				      struct pkt_info *out)
{
	unsigned char *head = skb->head;
	__u32 tail = skb->tail; /* offset from head on 64-bit kernels */
	__u16 proto = bpf_ntohs(skb->protocol);
	__u8 raw[IPV6_HDR_LEN + L4_BYTES];
	__u8 l4b[L4_BYTES];
	__u32 l3, l4;

	if (proto != ETH_P_IP_ && proto != ETH_P_IPV6_)
		return false;
	if (egress) {
		l3 = skb->network_header;
		if (l3 == (__u16)~0U)
			return false;
	} else {
		l3 = (__u32)((unsigned long)skb->data - (unsigned long)head);
	}
	if (surely_not_udp(skb))
		return false;

	if (proto == ETH_P_IP_) {
		if (read_at(raw, IPV4_HDR_LEN + L4_BYTES, head, l3))
			return false;
		if ((raw[0] >> 4) != 4 || (raw[0] & 0xf) < 5 || raw[9] != IPPROTO_UDP)
			return false;
		/* Non-first fragments carry no UDP header. */
		if (((raw[6] << 8) | raw[7]) & 0x1fff)
			return false;
		l4 = l3 + (raw[0] & 0xf) * 4;
		if (l4 == l3 + IPV4_HDR_LEN)
			__builtin_memcpy(l4b, raw + IPV4_HDR_LEN, L4_BYTES);
		else if (read_at(l4b, L4_BYTES, head, l4))
			return false;
	} else {
		if (read_at(raw, sizeof(raw), head, l3))
			return false;
		if ((raw[0] >> 4) != 6)
			return false;
		if (raw[6] == IPPROTO_UDP) {
			l4 = l3 + IPV6_HDR_LEN;
			__builtin_memcpy(l4b, raw + IPV6_HDR_LEN, L4_BYTES);
		} else {
			l4 = ipv6_udp(head, l3 + IPV6_HDR_LEN, raw[6]);
			if (!l4 || read_at(l4b, L4_BYTES, head, l4))
				return false;
		}
	}

	__u16 sport = (l4b[0] << 8) | l4b[1];
	__u16 dport = (l4b[2] << 8) | l4b[3];
	out->payload = l4 + UDP_HDR_LEN;
	/* The tail checks: headers must be in the linear area; fragments of a
	 * non-linear skb are not worth chasing for a scheduling hint. */
	if (dport == gtpu_port || sport == gtpu_port)
		return out->payload + GTPU_HDR_LEN <= tail && gtpu_gpdu(l4b + UDP_HDR_LEN, out);
	if (dport == rls_port || sport == rls_port)
		return out->payload + RLS_PDU_HDR_LEN <= tail && rls_data(l4b + UDP_HDR_LEN, out);
	return false;
}

/* One record; the RLS line stands where GTP-U's TEID line is, so both share
 * the DEV, PID and COMM lines the daemon already reads. */
#define EMIT_EVENT(prefix, skb, info)                                         \
	do {                                                                  \
		struct net_device *__dev = (skb)->dev;                        \
		if (__dev)                                                    \
			bpf_printk(prefix ": DEV=%s, LEN=%u", __dev->name,     \
				   (skb)->len);                               \
		else                                                          \
			bpf_printk(prefix ": DEV=?, LEN=%u", (skb)->len);      \
		if ((info).rls) {                                             \
			rls_fields(skb, &(info));                             \
			bpf_printk(prefix ": RLS=DATA, PSI=%u, LEN=%u",        \
				   (info).teid, (info).len);                  \
		} else {                                                      \
			bpf_printk(prefix ": TEID=0x%x, TYPE=%u", (info).teid, \
				   (unsigned int)(info).type);                \
		}                                                             \
		EMIT_PID_TGID_CPU(prefix);                                    \
		EMIT_COMM(prefix);                                            \
	} while (0)

/* The one hook of the de-duplicated mode: a packet's sender is who is
 * running where it leaves. */
SEC("tp_btf/net_dev_queue")
int BPF_PROG(tp_net_dev_queue, struct sk_buff *skb)
{
	struct pkt_info info = {};

	/* Before the packet is touched: a thread that printed a moment ago
	 * has nothing to add, whatever it sends. */
	if (!every_event && printed_recently(ctx))
		return 0;
	if (!skb || !parse_pkt(skb, true, &info) || !should_print(ctx))
		return 0;
	EMIT_EVENT("tp/net_dev_queue", skb, info);
	return 0;
}

/* Only with --every-event (the loader leaves it out otherwise): an arrival
 * runs in whatever context the softirq found, or on loopback in the sender's
 * again, so for "who sends" it adds nothing but its cost on every packet. */
SEC("tp_btf/netif_receive_skb")
int BPF_PROG(tp_netif_receive_skb, struct sk_buff *skb)
{
	struct pkt_info info = {};

	if (!skb || !parse_pkt(skb, false, &info) || !should_print(ctx))
		return 0;
	EMIT_EVENT("tp/netif_receive_skb", skb, info);
	return 0;
}
