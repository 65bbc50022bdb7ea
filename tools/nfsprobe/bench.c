/*
 * The benchmark modes: meta (CREATE, GETATTR, LOOKUP, READDIRPLUS,
 * REMOVE), seq (WRITE then READ a file in large requests) and rand (random
 * aligned READs for a while). One op is one raw RPC, K in flight on one
 * connection; each phase prints one JSON line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "probe.h"

#define MIB 1048576.0

static const char *stable_name(int stable)
{
	return stable == FILE_SYNC ? "filesync" : stable == DATA_SYNC ? "datasync" : "unstable";
}

/* The fields every phase has. */
void phase_head(struct json *j, struct probe *p, const char *mode, const char *phase, unsigned inflight)
{
	json_begin(j);
	json_str(j, "tool", "nfsprobe");
	json_str(j, "version", PROBE_VERSION);
	json_str(j, "mode", mode);
	json_str(j, "phase", phase);
	json_str(j, "label", p->opt.label);
	json_str(j, "server", p->server);
	json_str(j, "export", p->export_path);
	json_u64(j, "inflight", inflight);
}

void phase_counts(struct json *j, uint64_t ops, uint64_t errors, const char *first_error, double secs, struct lat *l)
{
	json_u64(j, "ops", ops);
	json_u64(j, "errors", errors);
	if (errors > 0 && first_error[0] != '\0')
		json_str(j, "first_error", first_error);
	json_num(j, "secs", secs);
	json_num(j, "ops_per_s", secs > 0 ? (double)ops / secs : 0);
	json_num(j, "lat_us_p50", lat_pct(l, 0.50));
	json_num(j, "lat_us_p90", lat_pct(l, 0.90));
	json_num(j, "lat_us_p99", lat_pct(l, 0.99));
	json_num(j, "lat_us_max", lat_pct(l, 1.0));
	json_u64(j, "n", l->n);
}

static void phase_line(struct probe *p, const char *mode, const char *phase, struct pipeline *pl)
{
	struct json j;
	phase_head(&j, p, mode, phase, pl->k);
	phase_counts(&j, pl->completed, pl->errors, pl->first_error, pl->secs, &pl->lat);
	json_print(&j);
}

/* meta */

struct meta {
	struct fh dir;
	struct fh *handles;
	unsigned char *have;
};

static void file_name(char *buf, size_t cap, uint64_t i)
{
	snprintf(buf, cap, "f%07llu", (unsigned long long)i);
}

static int meta_create(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct meta *m = pl->ctx;
	char name[32];
	file_name(name, sizeof name, i);
	return q_create(pl->p, c, &m->dir, name, GUARDED, 0644, NULL);
}

static void meta_created(struct pipeline *pl, struct call *c)
{
	struct meta *m = pl->ctx;
	if (c->r->status == NFS3_OK && c->r->has_fh) {
		m->handles[c->index] = c->r->fh;
		m->have[c->index] = 1;
	}
}

static int meta_getattr(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct meta *m = pl->ctx;
	return q_getattr(pl->p, c, m->have[i] ? &m->handles[i] : &m->dir);
}

static int meta_lookup(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct meta *m = pl->ctx;
	char name[32];
	file_name(name, sizeof name, i);
	return q_lookup(pl->p, c, &m->dir, name);
}

static int meta_remove(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct meta *m = pl->ctx;
	char name[32];
	file_name(name, sizeof name, i);
	return q_remove(pl->p, c, &m->dir, name);
}

static void count_entry(void *ctx, const struct dirent3 *e)
{
	uint64_t *n = ctx;
	if (!((e->name_len == 1 && e->name[0] == '.') || (e->name_len == 2 && memcmp(e->name, "..", 2) == 0)))
		(*n)++;
}

/* READDIRPLUS of the whole directory, one call at a time (each needs the last cookie). */
static int meta_readdirplus(struct probe *p, struct meta *m)
{
	struct lat l = { 0 };
	uint64_t entries = 0, calls = 0, errors = 0;
	char first_error[200] = "";
	uint64_t cookie = 0;
	unsigned char verf[NFS3_COOKIEVERFSIZE] = { 0 };
	struct reply r = { 0 };
	r.on_entry = count_entry;
	r.entry_ctx = &entries;
	double t0 = now();
	for (;;) {
		double c0 = now();
		int st = nfs3_readdirplus(p, &m->dir, cookie, verf, 8192, p->opt.rdp_max, &r);
		lat_add(&l, (now() - c0) * 1e6);
		calls++;
		if (st != NFS3_OK) {
			errors++;
			snprintf(first_error, sizeof first_error, "READDIRPLUS at cookie %llu: %.150s", (unsigned long long)cookie,
				 st == -1 ? r.error : status_name(st));
			break;
		}
		if (r.eof)
			break;
		if (r.entries == 0) {
			errors++;
			snprintf(first_error, sizeof first_error, "no entries and no eof at cookie %llu", (unsigned long long)cookie);
			break;
		}
		cookie = r.last_cookie;
		memcpy(verf, r.cookieverf, sizeof verf);
	}
	double secs = now() - t0;
	struct json j;
	phase_head(&j, p, "meta", "readdirplus", 1);
	phase_counts(&j, calls, errors, first_error, secs, &l);
	json_u64(&j, "entries", entries);
	json_num(&j, "entries_per_s", secs > 0 ? (double)entries / secs : 0);
	json_u64(&j, "maxcount", p->opt.rdp_max);
	json_print(&j);
	lat_free(&l);
	return errors == 0 ? 0 : 1;
}

static int run_phase(struct probe *p, const char *mode, const char *phase, struct pipeline *pl)
{
	if (pipeline_run(pl) != 0)
		pipeline_error(pl, "connection lost");
	phase_line(p, mode, phase, pl);
	lat_free(&pl->lat);
	return pl->errors == 0 && !p->dead ? 0 : 1;
}

static int bench_meta(struct probe *p)
{
	struct meta m = { .dir = p->work };
	uint64_t n = p->opt.files;
	m.handles = calloc(n, sizeof *m.handles);
	m.have = calloc(n, 1);
	if (m.handles == NULL || m.have == NULL) {
		fprintf(stderr, "nfsprobe: out of memory for %llu handles\n", (unsigned long long)n);
		return 2;
	}
	int bad = 0;
	struct pipeline pl = { .p = p, .k = p->opt.inflight, .n = n, .ctx = &m };
	pl.issue = meta_create;
	pl.done = meta_created;
	/* After a lost connection the remaining phases are not run: their figures would mean nothing. */
	bad |= run_phase(p, "meta", "create", &pl);
	struct pipeline ga = { .p = p, .k = p->opt.inflight, .n = n, .ctx = &m, .issue = meta_getattr };
	if (!p->dead)
		bad |= run_phase(p, "meta", "getattr", &ga);
	struct pipeline lk = { .p = p, .k = p->opt.inflight, .n = n, .ctx = &m, .issue = meta_lookup };
	if (!p->dead)
		bad |= run_phase(p, "meta", "lookup", &lk);
	if (!p->dead)
		bad |= meta_readdirplus(p, &m);
	struct pipeline rm = { .p = p, .k = p->opt.inflight, .n = n, .ctx = &m, .issue = meta_remove };
	if (!p->dead)
		bad |= run_phase(p, "meta", "remove", &rm);
	free(m.handles);
	free(m.have);
	return bad;
}

/* seq and rand */

struct data {
	struct fh f;
	uint64_t bytes;
	uint32_t req;
	int stable;
	int verify;
	unsigned char **bufs;     /* one per slot when verifying */
	uint64_t bad_reads;
	uint64_t blocks;          /* rand: aligned blocks in the file */
	uint64_t rng;
};

static uint32_t chunk(const struct data *d, uint64_t i)
{
	uint64_t off = i * d->req;
	return (uint32_t)(d->bytes - off < d->req ? d->bytes - off : d->req);
}

static int data_write(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct data *d = pl->ctx;
	uint64_t off = i * d->req;
	uint32_t n = chunk(d, i);
	return q_write(pl->p, c, &d->f, off, pattern_at(off, n), n, d->stable);
}

static void data_written(struct pipeline *pl, struct call *c)
{
	struct data *d = pl->ctx;
	if (c->r->status == NFS3_OK && c->r->count != chunk(d, c->index))
		pipeline_error(pl, "WRITE %llu wrote %u of %u bytes", (unsigned long long)c->index, c->r->count, chunk(d, c->index));
}

static int data_read(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct data *d = pl->ctx;
	if (d->verify) {
		c->r->buf = d->bufs[c->slot];
		c->r->buf_cap = d->req;
	}
	return q_read(pl->p, c, &d->f, i * d->req, chunk(d, i));
}

static void data_got(struct pipeline *pl, struct call *c)
{
	struct data *d = pl->ctx;
	if (c->r->status != NFS3_OK)
		return;
	uint32_t want = chunk(d, c->index);
	if (c->r->count != want) {
		pipeline_error(pl, "READ %llu returned %u of %u bytes", (unsigned long long)c->index, c->r->count, want);
		return;
	}
	if (d->verify && pattern_diff(c->index * d->req, c->r->buf, want) != want)
		d->bad_reads++;
}

static int rand_read(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct data *d = pl->ctx;
	(void)i;
	uint64_t off = (rng_next(&d->rng) % d->blocks) * d->req;
	return q_read(pl->p, c, &d->f, off, d->req);
}

static void rand_got(struct pipeline *pl, struct call *c)
{
	struct data *d = pl->ctx;
	if (c->r->status == NFS3_OK && c->r->count != d->req)
		pipeline_error(pl, "READ returned %u of %u bytes", c->r->count, d->req);
}

/* The server's preferred request size, at most 1 MiB (libnfs's own cap). */
static uint32_t default_req(const struct probe *p)
{
	uint32_t req = 1u << 20;
	if (p->have_fsinfo) {
		if (p->fsinfo.wtmax > 0 && p->fsinfo.wtmax < req)
			req = p->fsinfo.wtmax;
		if (p->fsinfo.rtmax > 0 && p->fsinfo.rtmax < req)
			req = p->fsinfo.rtmax;
	}
	return req;
}

static int make_data_file(struct probe *p, const char *name, struct data *d)
{
	struct reply r = { 0 };
	int st = nfs3_create(p, &p->work, name, GUARDED, 0644, NULL, &r);
	if (st == NFS3_OK && !r.has_fh)
		st = nfs3_lookup(p, &p->work, name, &r);
	if (st != NFS3_OK) {
		fprintf(stderr, "nfsprobe: CREATE %s: %s\n", name, st == -1 ? r.error : status_name(st));
		return -1;
	}
	d->f = r.fh;
	return 0;
}

/* COMMIT the whole file; its time in seconds, or -1. */
static double commit_all(struct probe *p, const struct data *d, struct pipeline *pl)
{
	struct reply r = { 0 };
	double t0 = now();
	int st = nfs3_commit(p, &d->f, &r);
	if (st != NFS3_OK) {
		pipeline_error(pl, "COMMIT: %.150s", st == -1 ? r.error : status_name(st));
		return -1;
	}
	return now() - t0;
}

static void data_line(struct probe *p, const char *mode, const char *phase, struct pipeline *pl, const struct data *d,
		      double secs, double commit_secs)
{
	struct json j;
	uint64_t bytes = strcmp(mode, "rand") == 0 ? pl->completed * d->req : d->bytes;
	phase_head(&j, p, mode, phase, pl->k);
	phase_counts(&j, pl->completed, pl->errors, pl->first_error, secs, &pl->lat);
	json_u64(&j, "bytes", bytes);
	json_num(&j, "mib_per_s", secs > 0 ? (double)bytes / MIB / secs : 0);
	json_num(&j, "mb_per_s", secs > 0 ? (double)bytes / 1e6 / secs : 0);
	json_u64(&j, "req_size", d->req);
	json_u64(&j, "size_mib", p->opt.size_mib);
	if (strcmp(mode, "seq") == 0)
		json_str(&j, "stable", stable_name(d->stable));
	if (commit_secs >= 0)
		json_num(&j, "commit_secs", commit_secs);
	if (d->verify) {
		json_str(&j, "verify", "pattern");
		json_u64(&j, "bad_reads", d->bad_reads);
	}
	json_print(&j);
}

static int bench_seq(struct probe *p)
{
	struct data d = { .bytes = (uint64_t)p->opt.size_mib << 20, .stable = p->opt.stable, .verify = p->opt.verify };
	d.req = p->opt.req_size != 0 ? p->opt.req_size : default_req(p);
	if (p->have_fsinfo && (d.req > p->fsinfo.wtmax || d.req > p->fsinfo.rtmax))
		fprintf(stderr, "nfsprobe: -R %u is above the server's wtmax %u / rtmax %u; sent anyway\n", d.req, p->fsinfo.wtmax,
			p->fsinfo.rtmax);
	if (make_data_file(p, "seq.dat", &d) != 0)
		return 1;
	uint64_t n = (d.bytes + d.req - 1) / d.req;
	int bad = 0;

	struct pipeline w = { .p = p, .k = p->opt.inflight, .n = n, .ctx = &d, .issue = data_write, .done = data_written };
	double commit = -1;
	if (pipeline_run(&w) != 0)
		pipeline_error(&w, "connection lost");
	else if (d.stable != FILE_SYNC)
		commit = commit_all(p, &d, &w);
	data_line(p, "seq", "write", &w, &d, w.secs + (commit > 0 ? commit : 0), commit);
	lat_free(&w.lat);
	bad |= w.errors != 0;
	if (p->dead)
		return 1;

	if (d.verify) {
		d.bufs = calloc(p->opt.inflight, sizeof *d.bufs);
		for (unsigned i = 0; d.bufs != NULL && i < p->opt.inflight; i++)
			if ((d.bufs[i] = malloc(d.req)) == NULL)
				d.verify = 0;
		if (d.bufs == NULL || !d.verify) {
			fprintf(stderr, "nfsprobe: out of memory for -V buffers\n");
			return 2;
		}
	}
	struct pipeline rd = { .p = p, .k = p->opt.inflight, .n = n, .ctx = &d, .issue = data_read, .done = data_got };
	if (pipeline_run(&rd) != 0)
		pipeline_error(&rd, "connection lost");
	data_line(p, "seq", "read", &rd, &d, rd.secs, -1);
	lat_free(&rd.lat);
	bad |= rd.errors != 0 || d.bad_reads != 0;
	if (d.bufs != NULL) {
		for (unsigned i = 0; i < p->opt.inflight; i++)
			free(d.bufs[i]);
		free(d.bufs);
	}
	return bad;
}

static int bench_rand(struct probe *p)
{
	struct data d = { .bytes = (uint64_t)p->opt.size_mib << 20, .stable = UNSTABLE, .rng = 0x72616e64 };
	d.req = default_req(p);
	if (make_data_file(p, "rand.dat", &d) != 0)
		return 1;
	/* Fill the file first (not timed). */
	struct pipeline w = { .p = p, .k = p->opt.inflight, .n = (d.bytes + d.req - 1) / d.req, .ctx = &d, .issue = data_write,
			      .done = data_written };
	if (pipeline_run(&w) != 0 || w.errors != 0 || commit_all(p, &d, &w) < 0) {
		fprintf(stderr, "nfsprobe: filling rand.dat failed: %s\n", w.first_error[0] != '\0' ? w.first_error : "connection lost");
		lat_free(&w.lat);
		return 1;
	}
	lat_free(&w.lat);

	d.req = p->opt.rand_size;
	d.blocks = d.bytes / d.req;
	if (d.blocks == 0) {
		fprintf(stderr, "nfsprobe: --rand-size %u is larger than the %u MiB file\n", d.req, p->opt.size_mib);
		return 2;
	}
	struct pipeline rd = { .p = p, .k = p->opt.inflight, .n = UINT64_MAX, .ctx = &d, .issue = rand_read, .done = rand_got };
	rd.deadline = now() + p->opt.seconds;
	if (pipeline_run(&rd) != 0)
		pipeline_error(&rd, "connection lost");
	data_line(p, "rand", "randread", &rd, &d, rd.secs, -1);
	lat_free(&rd.lat);
	return rd.errors != 0;
}

int run_bench(struct probe *p)
{
	if (make_work_dir(p) != 0)
		return 2;
	int bad;
	if (strcmp(p->opt.mode, "meta") == 0)
		bad = bench_meta(p);
	else if (strcmp(p->opt.mode, "seq") == 0)
		bad = bench_seq(p);
	else
		bad = bench_rand(p);
	if (!p->opt.keep && !p->dead) {
		int rc = remove_tree(p, p->work_path, 0);
		if (rc != 0)
			fprintf(stderr, "nfsprobe: removing %s: %s\n", p->work_path, nfs_get_error(p->nfs));
	}
	return bad != 0 ? 1 : 0;
}
