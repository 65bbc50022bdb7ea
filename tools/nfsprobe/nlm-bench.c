/*
 * nfsprobe nlm-bench URL PATH: N uncontended LOCK/UNLOCK pairs on one
 * file, K pairs in flight on the one NLM connection. Each slot is its own
 * lock owner (svid and oh) and each pair its own byte range, so no request
 * ever waits for another: what is measured is the server's lock path. One
 * JSON line, like the other benchmark modes; latency is per pair.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "probe.h"

#define PAIR_SPAN 16u /* bytes locked by one pair */

struct slot {
	struct nlm_reply r;
	struct nlm_lock_spec spec;
	char oh[32];
	uint64_t pair;
	int busy;
};

struct bench {
	struct probe *p;
	struct rpc_link nlm;
	struct fh fh;
	uint64_t next, completed, errors;
	char first_error[200];
	struct lat lat;
};

static void note(struct bench *b, const struct slot *s, const char *what)
{
	b->errors++;
	if (b->first_error[0] == '\0')
		snprintf(b->first_error, sizeof b->first_error, "pair %llu %s: %.150s", (unsigned long long)s->pair, what,
			 s->r.status == -1 ? s->r.error : !s->r.cookie_ok ? "cookie not echoed" : nlm_stat_name(s->r.status));
}

static int start_pair(struct bench *b, struct slot *s, unsigned k)
{
	s->pair = b->next++;
	snprintf(s->oh, sizeof s->oh, "nlm-bench-%u", k);
	memset(&s->spec, 0, sizeof s->spec);
	s->spec.caller = b->p->opt.caller;
	s->spec.oh = s->oh;
	s->spec.svid = 1000 + k;
	s->spec.l_offset = s->pair * PAIR_SPAN;
	s->spec.l_len = PAIR_SPAN;
	s->spec.exclusive = 1;
	double t0 = now();
	if (nlm_queue(&b->nlm, NLM_LOCK_CALL, &s->spec, &b->fh, &s->r) != 0) {
		note(b, s, "LOCK");
		b->completed++;
		return -1;
	}
	s->r.t0 = t0;
	s->busy = 1;
	return 0;
}

/* A reply arrived on slot s: after LOCK send UNLOCK, after UNLOCK the pair is done. 1 when the slot is free. */
static int step(struct bench *b, struct slot *s)
{
	int kind = s->r.kind;
	double t0 = s->r.t0;
	int ok = s->r.status == NLM4_GRANTED && s->r.cookie_ok;
	if (kind == NLM_LOCK_CALL) {
		if (!ok) {
			note(b, s, "LOCK");
			/* Not granted: nothing to unlock, the pair ends here. */
			b->completed++;
			return 1;
		}
		if (nlm_queue(&b->nlm, NLM_UNLOCK_CALL, &s->spec, &b->fh, &s->r) != 0) {
			note(b, s, "UNLOCK");
			b->completed++;
			return 1;
		}
		s->r.t0 = t0;
		return 0;
	}
	if (!ok)
		note(b, s, "UNLOCK");
	b->completed++;
	lat_add(&b->lat, (now() - t0) * 1e6);
	return 1;
}

static int run_pairs(struct bench *b, unsigned k, uint64_t n, double *secs)
{
	struct slot *slots = calloc(k, sizeof *slots);
	if (slots == NULL)
		return -1;
	unsigned busy = 0;
	double t0 = now(), progress = t0;
	for (unsigned j = 0; j < k && b->next < n; j++)
		if (start_pair(b, &slots[j], j) == 0)
			busy++;
	int rc = 0;
	while (busy > 0) {
		if (link_service(&b->nlm, 100) != 0) {
			rc = -1;
			break;
		}
		int any = 0;
		for (unsigned j = 0; j < k; j++) {
			struct slot *s = &slots[j];
			if (!s->busy || !s->r.done)
				continue;
			any = 1;
			if (!step(b, s))
				continue;
			s->busy = 0;
			busy--;
			if (b->next < n && start_pair(b, s, j) == 0)
				busy++;
		}
		double t = now();
		if (any)
			progress = t;
		else if (t - progress > b->p->opt.timeout_ms / 1000.0) {
			snprintf(b->nlm.error, sizeof b->nlm.error, "no reply within %u ms", b->p->opt.timeout_ms);
			rc = -1;
			break;
		}
	}
	*secs = now() - t0;
	/* After a failure libnfs may still point at the slots: they are leaked, not freed. */
	if (rc == 0)
		free(slots);
	return rc;
}

int run_nlm_bench(struct probe *p)
{
	static struct bench b;
	char err[300], full[1100];
	b.p = p;
	if (open_file(p, p->opt.path, &b.fh, full, sizeof full, err, sizeof err) != 0) {
		fprintf(stderr, "nfsprobe: %s\n", err);
		return 2;
	}
	if (link_open(&b.nlm, p->server, NLM_PROGRAM, NLM_V4, p->opt.nlm_port, p->opt.pmap_port, p->opt.timeout_ms) != 0) {
		fprintf(stderr, "nfsprobe: NLM: %s\n", b.nlm.error);
		link_close(&b.nlm);
		return 2;
	}
	double secs = 0;
	uint64_t n = p->opt.files;
	int rc = run_pairs(&b, p->opt.inflight, n, &secs);
	if (rc != 0 && b.first_error[0] == '\0')
		snprintf(b.first_error, sizeof b.first_error, "%s", b.nlm.error);
	/* Every pair unlocked what it locked: a whole-file exclusive TEST by another owner must be granted. */
	struct nlm_lock_spec all = { .caller = p->opt.caller, .oh = "nlm-bench-check", .svid = 999, .exclusive = 1 };
	struct nlm_reply t;
	nlm_reply_init(&t, NLM_TEST_CALL);
	if (rc == 0 && nlm_queue(&b.nlm, NLM_TEST_CALL, &all, &b.fh, &t) == 0)
		link_pump(&b.nlm, &t.done, now() + p->opt.timeout_ms / 1000.0);
	struct json j;
	phase_head(&j, p, "nlm-bench", "lock-unlock", p->opt.inflight);
	uint64_t missing = rc != 0 ? n - b.completed : 0;
	phase_counts(&j, b.completed, b.errors + missing, b.first_error, secs, &b.lat);
	json_num(&j, "pairs_per_s", secs > 0 ? (double)b.completed / secs : 0);
	json_u64(&j, "nlm_port", b.nlm.port);
	json_str(&j, "after_test", t.status == -1 ? "no reply" : nlm_stat_name(t.status));
	json_print(&j);
	link_close(&b.nlm);
	return rc != 0 || b.errors > 0 || t.status != NLM4_GRANTED ? 1 : 0;
}
