// SPDX-License-Identifier: GPL-2.0
/*
 * Round-trip times as a fixed log-linear histogram: RTT_SUB buckets per
 * power of two of nanoseconds, so a bucket is at most 1/RTT_SUB (6.25%)
 * wide relative to its values, from 1 ns to 2^36 ns (69 s; longer ones
 * land in the last bucket, the exact maximum is kept beside). A fixed
 * table rather than a sample array: memory does not grow with the run's
 * length or rate, recording is one increment without a lock (one writer
 * per UE, the RLS thread) and the parent merges UEs by adding buckets.
 */
#include "ran-sim.h"

static unsigned bucket_of(uint64_t ns)
{
	if (ns < RTT_SUB)
		return (unsigned)ns;
	unsigned e = 63 - (unsigned)__builtin_clzll(ns); /* >= RTT_SUB_BITS */
	unsigned idx = ((e - RTT_SUB_BITS + 1) << RTT_SUB_BITS) +
		       (unsigned)((ns >> (e - RTT_SUB_BITS)) & (RTT_SUB - 1));

	return idx < RTT_BUCKETS ? idx : RTT_BUCKETS - 1;
}

/* The largest value that falls in bucket idx. */
static uint64_t bucket_top(unsigned idx)
{
	if (idx < RTT_SUB)
		return idx;
	unsigned shift = (idx >> RTT_SUB_BITS) - 1;
	uint64_t low = (uint64_t)(RTT_SUB + (idx & (RTT_SUB - 1))) << shift;

	return low + (1ULL << shift) - 1;
}

void rtt_record(struct rtt *h, uint64_t ns)
{
	count(&h->bucket[bucket_of(ns)]);
	count(&h->count);
	if (ns > __atomic_load_n(&h->max_ns, __ATOMIC_RELAXED))
		__atomic_store_n(&h->max_ns, ns, __ATOMIC_RELAXED);
}

void rtt_add(struct rtt *sum, const struct rtt *h)
{
	for (unsigned i = 0; i < RTT_BUCKETS; i++)
		sum->bucket[i] += read_count(&h->bucket[i]);
	sum->count += read_count(&h->count);
	unsigned long max = read_count(&h->max_ns);
	if (max > sum->max_ns)
		sum->max_ns = max;
}

/* Nearest rank, reported as its bucket's top (an upper bound within
 * 6.25%), never above the exact maximum. */
static uint64_t quantile_ns(const struct rtt *h, double q)
{
	unsigned long rank = (unsigned long)(q * h->count), seen = 0;

	if (rank < q * h->count)
		rank++;
	if (!rank)
		rank = 1;
	for (unsigned i = 0; i < RTT_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t top = bucket_top(i);
			return top < h->max_ns ? top : h->max_ns;
		}
	}
	return h->max_ns;
}

void rtt_json(FILE *f, const struct rtt *h)
{
	fprintf(f, "\"rtt_us\":{\"count\":%lu,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}", h->count,
		h->count ? quantile_ns(h, 0.50) / 1e3 : 0, h->count ? quantile_ns(h, 0.99) / 1e3 : 0,
		h->max_ns / 1e3);
}
