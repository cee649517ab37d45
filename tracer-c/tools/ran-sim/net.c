// SPDX-License-Identifier: GPL-2.0
/* UDP sockets and their addresses, IPv4 or IPv6. */
#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "ran-sim.h"

int resolve(const char *opt, const char *host, unsigned port, struct addr *out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai;
	char portstr[8];
	int err;

	snprintf(portstr, sizeof(portstr), "%u", port);
	err = getaddrinfo(host, portstr, &hints, &ai);
	if (err) {
		fprintf(stderr, PROG ": %s %s: %s (expected a numeric IPv4 or IPv6 address)\n", opt,
			host, gai_strerror(err));
		return -1;
	}
	memcpy(&out->sa, ai->ai_addr, ai->ai_addrlen);
	out->len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void describe(const struct addr *a, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)&a->sa;
		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		port = ntohs(s->sin6_port);
		snprintf(buf, n, "[%s]:%u", host, port);
		return;
	}
	const struct sockaddr_in *s = (const void *)&a->sa;
	inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
	port = ntohs(s->sin_port);
	snprintf(buf, n, "%s:%u", host, port);
}

/* A UDP socket whose receives time out after POLL_MS, bound to `local`
 * when given (else the kernel picks a port at the first send). */
int udp_socket(int family, const struct addr *local, const char *what)
{
	struct timeval tv = { 0, POLL_MS * 1000 };
	char where[INET6_ADDRSTRLEN + 10];
	int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);

	if (fd < 0) {
		fprintf(stderr, PROG ": %s: socket: %s\n", what, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (local && bind(fd, (const struct sockaddr *)&local->sa, local->len)) {
		describe(local, where, sizeof(where));
		fprintf(stderr, PROG ": %s: bind %s: %s\n", what, where, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Loopback drops are part of the game (a full socket buffer, a peer that
 * just exited): only unexpected errors are worth a message. */
void send_to(int fd, const void *buf, size_t len, const struct addr *to, const char *who)
{
	if (sendto(fd, buf, len, 0, (const struct sockaddr *)&to->sa, to->len) < 0 &&
	    errno != ECONNREFUSED && errno != EAGAIN && errno != ENOBUFS && errno != EPERM)
		fprintf(stderr, PROG ": %s: sendto: %s\n", who, strerror(errno));
}

/* A receive of up to `cap` bytes; 0 on timeout or a transient error. */
size_t receive(int fd, uint8_t *buf, size_t cap, struct addr *from)
{
	ssize_t n;

	from->len = sizeof(from->sa);
	n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&from->sa, &from->len);
	return n > 0 ? (size_t)n : 0;
}
