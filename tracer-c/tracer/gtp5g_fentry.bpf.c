// SPDX-License-Identifier: GPL-2.0
/*
 * fentry/fexit tracer for the free5gc gtp5g kernel module, faithful to the
 * Step 11 tracer: same probes, same message formats (see
 * /work/shared/reference/trace-format.md), plus one COMM line per event.
 *
 * It must compile against vmlinux BTF alone (the module's BTF is only present
 * while gtp5g is loaded), so the few module types used are declared here.
 * BPF_PROG() arguments follow the functions' real signatures in
 * free5gc/gtp5g (src/gtpu/encap.c, pktinfo.c, src/pfcp/pdr.c, trTCM.c):
 * for fexit the return value comes after ALL arguments, so a wrong arity
 * would silently read an argument as the return value.
 *
 * De-duplication is per thread, across all probes: one packet runs several
 * of these functions in the same thread, and the first of them in a refresh
 * period (normally an fentry, which prints PID and TGID) stands for the
 * rest. --every-event prints every call, as Step 11 did.
 */
#include "gtp5g_dedup.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Opaque to us: only passed through as pointers. */
struct gtp5g_dev;
struct pdr;
struct TrafficPolicer;

/* Only the field we read; CO-RE finds its offset in gtp5g's module BTF. */
struct gtp5g_pktinfo {
	struct net_device *dev;
} __attribute__((preserve_access_index));

/* ip4_find_route() and pdr_find_by_gtp1u() return NULL or ERR_PTR() on
 * failure. */
#define MAX_ERRNO_ 4095
static __always_inline bool ptr_ok(const void *p)
{
	return p && (unsigned long)p < (unsigned long)-MAX_ERRNO_;
}

/* ---- uplink entry: UDP encap_rcv hook of the N3 socket ---- */

/* static int gtp5g_encap_recv(struct sock *sk, struct sk_buff *skb) */
SEC("fentry/gtp5g_encap_recv")
int BPF_PROG(fentry_gtp5g_encap_recv, struct sock *sk, struct sk_buff *skb)
{
	if (!should_print(ctx))
		return 0;
	__u32 len = 0;

	if (skb) {
		struct net_device *dev = skb->dev;

		len = skb->len;
		if (dev)
			bpf_printk("fentry/gtp5g_encap_recv: DEV=%s", dev->name);
		if (len >= 8)
			bpf_printk("fentry/gtp5g_encap_recv: GTP packet detected (len >= 8)");
	} else {
		bpf_printk("fentry/gtp5g_encap_recv: skb is NULL");
	}
	EMIT_PID_TGID_CPU("fentry/gtp5g_encap_recv");
	bpf_printk("fentry/gtp5g_encap_recv: LEN=%u", len);
	EMIT_COMM("fentry/gtp5g_encap_recv");
	return 0;
}

SEC("fexit/gtp5g_encap_recv")
int BPF_PROG(fexit_gtp5g_encap_recv, struct sock *sk, struct sk_buff *skb,
	     int ret)
{
	if (!should_print(ctx))
		return 0;
	EMIT_PID_TGID_CPU("fexit/gtp5g_encap_recv");
	/* The skb may already be freed (dropped or consumed) when the function
	 * returns, so its device is not read here. */
	EMIT_COMM("fexit/gtp5g_encap_recv");
	return 0;
}

/* ---- downlink: gtp5g net_device xmit path ---- */

/* int gtp5g_handle_skb_ipv4(struct sk_buff *skb, struct net_device *dev,
 *                           struct gtp5g_pktinfo *pktinfo) */
SEC("fentry/gtp5g_handle_skb_ipv4")
int BPF_PROG(fentry_gtp5g_handle_skb_ipv4, struct sk_buff *skb,
	     struct net_device *dev, struct gtp5g_pktinfo *pktinfo)
{
	if (!should_print(ctx))
		return 0;
	EMIT_PID_TGID_CPU("fentry/gtp5g_handle_skb_ipv4");
	if (dev)
		bpf_printk("fentry/gtp5g_handle_skb_ipv4: DEV=%s", dev->name);
	EMIT_COMM("fentry/gtp5g_handle_skb_ipv4");
	return 0;
}

SEC("fexit/gtp5g_handle_skb_ipv4")
int BPF_PROG(fexit_gtp5g_handle_skb_ipv4, struct sk_buff *skb,
	     struct net_device *dev, struct gtp5g_pktinfo *pktinfo, int ret)
{
	if (!should_print(ctx))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();

	/* "(skb ptr)" is kept from Step 11 so existing parsers keep matching;
	 * the value is the function's int return (FAR action or -errno). */
	bpf_printk("fexit/gtp5g_handle_skb_ipv4: PID=%d, TGID=%d, RET=0x%x (skb ptr)",
		   CUR_PID(id), CUR_TGID(id), ret);
	EMIT_COMM("fexit/gtp5g_handle_skb_ipv4");
	return 0;
}

/* void gtp5g_xmit_skb_ipv4(struct sk_buff *skb, struct gtp5g_pktinfo *pktinfo) */
SEC("fentry/gtp5g_xmit_skb_ipv4")
int BPF_PROG(fentry_gtp5g_xmit_skb_ipv4, struct sk_buff *skb,
	     struct gtp5g_pktinfo *pktinfo)
{
	if (!should_print(ctx))
		return 0;
	struct net_device *dev = NULL;

	if (skb)
		dev = skb->dev;
	if (!dev && pktinfo && bpf_core_field_exists(pktinfo->dev))
		dev = pktinfo->dev;
	if (dev)
		bpf_printk("fentry/gtp5g_xmit_skb_ipv4: DEV=%s", dev->name);
	if (skb) {
		bpf_printk("fentry/gtp5g_xmit_skb_ipv4: LEN=%u, TS=%llu", skb->len,
			   bpf_ktime_get_ns());
		if (pktinfo)
			bpf_printk("fentry/gtp5g_xmit_skb_ipv4: pktinfo exists");
	}
	EMIT_PID_TGID_CPU("fentry/gtp5g_xmit_skb_ipv4");
	EMIT_COMM("fentry/gtp5g_xmit_skb_ipv4");
	return 0;
}

SEC("fexit/gtp5g_xmit_skb_ipv4")
int BPF_PROG(fexit_gtp5g_xmit_skb_ipv4, struct sk_buff *skb,
	     struct gtp5g_pktinfo *pktinfo)
{
	if (!should_print(ctx))
		return 0;
	/* udp_tunnel_xmit_skb() consumed the skb: only task facts are safe. */
	EMIT_PID_TGID_CPU("fexit/gtp5g_xmit_skb_ipv4");
	EMIT_COMM("fexit/gtp5g_xmit_skb_ipv4");
	return 0;
}

/* void gtp5g_push_header(struct sk_buff *skb, struct gtp5g_pktinfo *pktinfo) */
SEC("fentry/gtp5g_push_header")
int BPF_PROG(fentry_gtp5g_push_header, struct sk_buff *skb,
	     struct gtp5g_pktinfo *pktinfo)
{
	if (!should_print(ctx))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	__u32 len = skb ? skb->len : 0;

	bpf_printk("fentry/gtp5g_push_header: PID=%d, TGID=%d, LEN=%u",
		   CUR_PID(id), CUR_TGID(id), len);
	if (skb && skb->dev)
		bpf_printk("fentry/gtp5g_push_header: DEV=%s", skb->dev->name);
	EMIT_COMM("fentry/gtp5g_push_header");
	return 0;
}

SEC("fexit/gtp5g_push_header")
int BPF_PROG(fexit_gtp5g_push_header, struct sk_buff *skb,
	     struct gtp5g_pktinfo *pktinfo)
{
	if (!should_print(ctx))
		return 0;
	/* The function returns void; Step 11 printed a RET field anyway, so it
	 * stays (always 0) for format compatibility. LEN now includes the pushed
	 * GTP-U header. */
	__u32 len = skb ? skb->len : 0;

	bpf_printk("fexit/gtp5g_push_header: RET=0x%x (skb ptr), LEN=%u, TS=%llu",
		   0, len, bpf_ktime_get_ns());
	EMIT_COMM("fexit/gtp5g_push_header");
	return 0;
}

/* ---- PDR lookup, QoS, routing ---- */

/* struct pdr *pdr_find_by_gtp1u(struct gtp5g_dev *gtp, struct sk_buff *skb,
 *                               unsigned int hdrlen, u32 teid, u8 type) */
SEC("fentry/pdr_find_by_gtp1u")
int BPF_PROG(fentry_pdr_find_by_gtp1u, struct gtp5g_dev *gtp,
	     struct sk_buff *skb, unsigned int hdrlen, __u32 teid, __u8 type)
{
	if (!should_print(ctx))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();

	bpf_printk("fentry/pdr_find_by_gtp1u: PID=%d, TGID=%d", CUR_PID(id),
		   CUR_TGID(id));
	EMIT_COMM("fentry/pdr_find_by_gtp1u");
	return 0;
}

SEC("fexit/pdr_find_by_gtp1u")
int BPF_PROG(fexit_pdr_find_by_gtp1u, struct gtp5g_dev *gtp,
	     struct sk_buff *skb, unsigned int hdrlen, __u32 teid, __u8 type,
	     struct pdr *ret)
{
	if (!should_print(ctx))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();

	if (ptr_ok(ret))
		bpf_printk("fexit/pdr_find_by_gtp1u: PID=%d, PDR=Found", CUR_PID(id));
	else
		bpf_printk("fexit/pdr_find_by_gtp1u: PID=%d, PDR=Not Found", CUR_PID(id));
	EMIT_COMM("fexit/pdr_find_by_gtp1u");
	return 0;
}

/* Color policePacket(TrafficPolicer *p, int pktLen) (trTCM.c) */
SEC("fentry/policePacket")
int BPF_PROG(fentry_policePacket, struct TrafficPolicer *p, int pkt_len)
{
	if (!should_print(ctx))
		return 0;
	EMIT_PID_TGID_CPU("fentry/policePacket");
	EMIT_COMM("fentry/policePacket");
	return 0;
}

/* struct rtable *ip4_find_route(struct sk_buff *skb, struct iphdr *iph,
 *         struct sock *sk, struct net_device *gtp_dev,
 *         __be32 saddr, __be32 daddr, struct flowi4 *fl4)
 * Seven arguments: needs a kernel whose trampolines take more than six
 * (x86-64 since 6.6). */
SEC("fentry/ip4_find_route")
int BPF_PROG(fentry_ip4_find_route, struct sk_buff *skb, struct iphdr *iph,
	     struct sock *sk, struct net_device *gtp_dev, __be32 saddr,
	     __be32 daddr, struct flowi4 *fl4)
{
	if (!should_print(ctx))
		return 0;
	EMIT_PID_TGID_CPU("fentry/ip4_find_route");
	EMIT_COMM("fentry/ip4_find_route");
	return 0;
}

SEC("fexit/ip4_find_route")
int BPF_PROG(fexit_ip4_find_route, struct sk_buff *skb, struct iphdr *iph,
	     struct sock *sk, struct net_device *gtp_dev, __be32 saddr,
	     __be32 daddr, struct flowi4 *fl4, struct rtable *ret)
{
	if (!should_print(ctx))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();

	/* Failure is ERR_PTR(-ENOENT), not NULL. */
	if (ptr_ok(ret))
		bpf_printk("fexit/ip4_find_route: PID=%d, Route=Found", CUR_PID(id));
	else
		bpf_printk("fexit/ip4_find_route: PID=%d, Route=Not Found", CUR_PID(id));
	EMIT_COMM("fexit/ip4_find_route");
	return 0;
}
