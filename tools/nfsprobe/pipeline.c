/*
 * Many raw calls with k in flight on the one connection: each slot is
 * re-armed as soon as its reply has been taken, until n ops have completed
 * or the deadline passes. Latency is per op, queue to reply.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "probe.h"

struct slot {
	struct call c;
	struct reply r;
	int busy;
};

static void note_error(struct pipeline *pl, const struct reply *r, uint64_t i)
{
	pl->errors++;
	if (pl->first_error[0] == '\0')
		snprintf(pl->first_error, sizeof pl->first_error, "op %llu: %.150s", (unsigned long long)i,
			 r->status == -1 ? r->error : status_name(r->status));
}

/* A done hook's own verdict on a reply that was NFS3_OK (a short READ, wrong data). */
void pipeline_error(struct pipeline *pl, const char *fmt, ...)
{
	pl->errors++;
	if (pl->first_error[0] != '\0')
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(pl->first_error, sizeof pl->first_error, fmt, ap);
	va_end(ap);
}

/* Queue op i on slot s; a call that cannot be queued counts as an error at once. */
static int arm(struct pipeline *pl, struct slot *s, unsigned slot, uint64_t i)
{
	call_init(&s->c, &s->r);
	s->c.index = i;
	s->c.slot = slot;
	s->c.t0 = now();
	if (pl->issue(pl, &s->c, i) != 0) {
		note_error(pl, &s->r, i);
		pl->completed++;
		return -1;
	}
	s->busy = 1;
	return 0;
}

int pipeline_run(struct pipeline *pl)
{
	unsigned k = pl->k == 0 ? 1 : pl->k;
	if ((uint64_t)k > pl->n)
		k = (unsigned)(pl->n == 0 ? 1 : pl->n);
	struct slot *slots = calloc(k, sizeof *slots);
	if (slots == NULL)
		return -1;
	uint64_t next = 0;
	unsigned busy = 0;
	double t0 = now();
	int rc = 0;
	for (unsigned j = 0; j < k && next < pl->n; j++)
		if (arm(pl, &slots[j], j, next++) == 0)
			busy++;
	while (busy > 0) {
		/* Any reply that arrived while queuing is taken before polling again. */
		int any = 0;
		for (unsigned j = 0; j < k; j++)
			any |= slots[j].busy && slots[j].c.done;
		if (!any && pump_some(pl->p) != 0) {
			rc = -1;
			break;
		}
		for (unsigned j = 0; j < k; j++) {
			struct slot *s = &slots[j];
			if (!s->busy || !s->c.done)
				continue;
			s->busy = 0;
			busy--;
			pl->completed++;
			lat_add(&pl->lat, (now() - s->c.t0) * 1e6);
			if (s->r.status != NFS3_OK)
				note_error(pl, &s->r, s->c.index);
			if (pl->done != NULL)
				pl->done(pl, &s->c);
			/* A call that could not be queued leaves its slot idle: the run drains, it does not spin. */
			if (next < pl->n && (pl->deadline == 0 || now() < pl->deadline) && arm(pl, s, j, next++) == 0)
				busy++;
		}
	}
	pl->secs = now() - t0;
	/* On a lost connection libnfs may still hold the slots: they are leaked, not freed. */
	if (rc == 0)
		free(slots);
	return rc;
}
