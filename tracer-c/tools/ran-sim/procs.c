// SPDX-License-Identifier: GPL-2.0
/* The processes: one nr-gnb and one nr-ue per UE, forked, named, reported
 * (one JSON line each) and supervised by the parent. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "ran-sim.h"

#define STOP_GRACE_S 5

static void json_tids(FILE *f, const struct crew *c)
{
	for (unsigned i = 0; i < c->registered; i++)
		fprintf(f, "%s%d", i ? "," : "", (int)c->tids[i]);
}

/* The JSON line, written to the parent in one write (atomic on a pipe). */
void report(int fd, const struct crew *c, const char *role, const struct ue *u)
{
	char comm[17] = "", *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	prctl(PR_GET_NAME, comm, 0, 0, 0);
	fprintf(f, "{\"role\":\"%s\",\"name\":\"%s\",\"pid\":%d,", role, comm, (int)getpid());
	if (u)
		ue_describe(f, u);
	fprintf(f, "\"tids\":[");
	json_tids(f, c);
	fprintf(f, "]}\n");
	fclose(f);
	if (write(fd, buf, size) != (ssize_t)size)
		fprintf(stderr, PROG ": %s: cannot report to the parent: %s\n", role, strerror(errno));
	free(buf);
}

/* Blocks until the parent closes its end of the go pipe. */
static void wait_go(int fd)
{
	char c;
	ssize_t n;

	do
		n = read(fd, &c, 1);
	while (n > 0 || (n < 0 && errno == EINTR));
}

void stop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
}

/* Until SIGTERM/SIGINT/SIGHUP (blocked since before the fork). */
static void wait_stop_signal(void)
{
	sigset_t set;
	int sig;

	stop_signals(&set);
	sigwait(&set, &sig);
}

/* Threads are created, reported, released on go, stopped on a signal. */
int run_crew(struct run *r, struct crew *c, void *(**fns)(void *), unsigned nfns,
		    void *arg, const char *role, const struct ue *u)
{
	for (unsigned i = 0; i < nfns; i++) {
		int err = crew_spawn(c, fns[i], arg);
		if (err) {
			fprintf(stderr, PROG ": %s: pthread_create: %s\n", role, strerror(err));
			return 1;
		}
	}
	crew_wait_registered(c);
	report(r->report[1], c, role, u);
	wait_go(r->go[0]);
	crew_set(c, &c->go);
	wait_stop_signal();
	crew_stop_and_join(c);
	return 0;
}


/* In the child: named before any thread exists, gone with the parent. */
static pid_t fork_child(struct run *r, struct child *k)
{
	pid_t parent = getpid();
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid)
		return pid;
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) || getppid() != parent)
		_exit(1);
	prctl(PR_SET_NAME, k->name, 0, 0, 0);
	close(r->go[1]);
	close(r->report[0]);
	close(r->upf_fd);
	_exit(k->ue == (unsigned)-1 ? gnb_main(r) : ue_main(r, k->ue, k->idle));
}

/* The child's JSON line; false if it died first or took over 10 s. */
static bool read_report(struct run *r, const struct child *k, char *line, size_t cap)
{
	struct pollfd p = { .fd = r->report[0], .events = POLLIN };

	for (int waited = 0; waited < 10000; waited += POLL_MS) {
		if (waitpid(k->pid, NULL, WNOHANG) == k->pid)
			return false;
		if (poll(&p, 1, POLL_MS) <= 0)
			continue;
		ssize_t n = read(r->report[0], line, cap - 1);
		if (n <= 0)
			return false;
		line[n] = 0;
		return true;
	}
	return false;
}

static int start_child(struct run *r, const char *name, unsigned ue, bool idle, FILE *json)
{
	struct child *k = &r->kids[r->nkids];
	char line[4096];

	*k = (struct child){ .name = name, .ue = ue, .idle = idle };
	k->pid = fork_child(r, k);
	if (k->pid < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		return -1;
	}
	r->nkids++;
	if (!read_report(r, k, line, sizeof(line))) {
		fprintf(stderr, PROG ": %s (pid %d) failed to start\n", name, (int)k->pid);
		return -1;
	}
	fputs(line, json);
	return 0;
}

void stop_children(struct run *r)
{
	double deadline = now_s() + STOP_GRACE_S;

	for (unsigned i = 0; i < r->nkids; i++)
		if (!r->kids[i].exited)
			kill(r->kids[i].pid, SIGTERM);
	for (unsigned i = 0; i < r->nkids; i++) {
		struct child *k = &r->kids[i];

		while (!k->exited) {
			pid_t w = waitpid(k->pid, NULL, WNOHANG);

			if (w == k->pid || (w < 0 && errno == ECHILD))
				break;
			if (now_s() > deadline) {
				fprintf(stderr, PROG ": %s pid %d ignored SIGTERM; killing it\n",
					k->name, (int)k->pid);
				kill(k->pid, SIGKILL);
				waitpid(k->pid, NULL, 0);
				break;
			}
			usleep(10000);
		}
		k->exited = true;
	}
}

/* Reaps exited children; false when the gNB is among them. */
static bool reap(struct run *r)
{
	bool gnb_alive = true;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (unsigned i = 0; i < r->nkids; i++) {
			struct child *k = &r->kids[i];
			if (k->pid != pid)
				continue;
			k->exited = true;
			gnb_alive &= i != 0;
			fprintf(stderr, PROG ": %s pid %d exited (%s %d)\n", k->name, (int)pid,
				WIFSIGNALED(status) ? "signal" : "status",
				WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		}
	}
	return gnb_alive;
}

/* Until a signal, --duration, or the gNB's death (then false). */
bool supervise(struct run *r)
{
	double end = r->o.duration_s ? now_s() + r->o.duration_s : 0;
	struct timespec tick = { 0, POLL_MS * 1000000L };
	sigset_t set;

	stop_signals(&set);
	sigaddset(&set, SIGCHLD);
	for (;;) {
		int sig = sigtimedwait(&set, NULL, &tick);

		if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
			return true;
		if (!reap(r)) {
			fprintf(stderr, PROG ": nr-gnb is gone: stopping\n");
			return false;
		}
		if (end && now_s() >= end)
			return true;
	}
}


int start_all(struct run *r, FILE *json)
{
	if (start_child(r, "nr-gnb", (unsigned)-1, false, json))
		return -1;
	for (unsigned i = 0; i < r->o.ues + r->o.idle_ues; i++)
		if (start_child(r, "nr-ue", i, i >= r->o.ues, json))
			return -1;
	return 0;
}

