/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/* Command-line helpers shared by the tracer-c programs. Each includes this
 * after defining PROG, its name for messages. */
#ifndef GTP5G_CLI_H
#define GTP5G_CLI_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* An unsigned option value in [min, max] (decimal, 0x hex or 0 octal); a
 * clear message and -1 otherwise. strtoul alone would accept "-1". */
static inline int parse_ul(const char *opt, const char *s, unsigned long min,
			   unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 0);
	if (errno || !*s || *end || *s == '-' || *out < min || *out > max) {
		fprintf(stderr, PROG ": %s: invalid value '%s' (expected %lu..%lu)\n", opt, s, min, max);
		return -1;
	}
	return 0;
}

#endif
