// SPDX-License-Identifier: GPL-2.0
/* The threads of one process and the monotonic clock they run on. */
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "ran-sim.h"

struct timespec after_ms(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	add_ns(&t, ms * 1000000L);
	return t;
}

bool reached(const struct timespec *t)
{
	struct timespec n;

	clock_gettime(CLOCK_MONOTONIC, &n);
	return n.tv_sec > t->tv_sec || (n.tv_sec == t->tv_sec && n.tv_nsec >= t->tv_nsec);
}

void crew_init(struct crew *c)
{
	pthread_condattr_t a;

	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &a);
	pthread_condattr_destroy(&a);
	c->tids[0] = getpid();
	c->registered = 1;
}

int crew_spawn(struct crew *c, void *(*fn)(void *), void *arg)
{
	int err;

	if (c->nthreads + 1 >= MAX_THREADS)
		return EAGAIN;
	err = pthread_create(&c->threads[c->nthreads], NULL, fn, arg);
	if (!err)
		c->nthreads++;
	return err;
}

void crew_register(struct crew *c)
{
	pthread_mutex_lock(&c->mu);
	c->tids[c->registered++] = (pid_t)syscall(SYS_gettid);
	pthread_cond_broadcast(&c->cv);
	while (!c->go && !c->stop)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

void crew_wait_registered(struct crew *c)
{
	pthread_mutex_lock(&c->mu);
	while (c->registered < c->nthreads + 1)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

void crew_set(struct crew *c, bool *flag)
{
	pthread_mutex_lock(&c->mu);
	__atomic_store_n(flag, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

bool crew_stopping(struct crew *c)
{
	return __atomic_load_n(&c->stop, __ATOMIC_RELAXED);
}

/* Sleeps until t or a stop; false on stop. */
bool crew_sleep_until(struct crew *c, const struct timespec *t)
{
	bool stop;

	pthread_mutex_lock(&c->mu);
	while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, t) != ETIMEDOUT)
		;
	stop = c->stop;
	pthread_mutex_unlock(&c->mu);
	return !stop;
}

void crew_wait_stop(struct crew *c)
{
	pthread_mutex_lock(&c->mu);
	while (!c->stop)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
}

void crew_stop_and_join(struct crew *c)
{
	crew_set(c, &c->stop);
	for (unsigned i = 0; i < c->nthreads; i++)
		pthread_join(c->threads[i], NULL);
}
