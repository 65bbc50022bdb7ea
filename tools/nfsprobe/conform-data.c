/*
 * Checks of file data: round trips through libnfs, READ at and across EOF,
 * WRITE stability, truncation, holes, and many concurrent UNSTABLE WRITEs
 * followed by one COMMIT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

static unsigned char *scratch(size_t n)
{
	static unsigned char *buf;
	static size_t cap;
	if (n > cap) {
		free(buf);
		buf = malloc(n);
		cap = buf == NULL ? 0 : n;
	}
	return buf;
}

/* Write `size` bytes of the pattern through libnfs, check the size, read it back asking 64 KiB more. */
static void check_rw(struct probe *p, uint64_t size)
{
	char name[32], path[512];
	snprintf(name, sizeof name, "rw-%llu", (unsigned long long)size);
	path_in(p, path, sizeof path, name);
	int rc = put_pattern(p, path, size);
	EXPECT(p, name, rc == 0, "write: %d %s", rc, nfs_get_error(p->nfs));
	struct nfs_stat_64 st;
	rc = nfs_stat64(p->nfs, path, &st);
	EXPECT(p, name, rc == 0, "stat: %s", nfs_get_error(p->nfs));
	EXPECT(p, name, st.nfs_size == size, "size %llu after writing %llu bytes", (unsigned long long)st.nfs_size,
	       (unsigned long long)size);
	size_t ask = (size_t)size + 65536;
	unsigned char *buf = scratch(ask);
	EXPECT(p, name, buf != NULL, "out of memory");
	struct nfsfh *f;
	rc = nfs_open(p->nfs, path, O_RDONLY, &f);
	EXPECT(p, name, rc == 0, "open: %s", nfs_get_error(p->nfs));
	uint64_t got = 0;
	for (;;) {
		rc = nfs_pread(p->nfs, f, got, ask - got, buf + got);
		if (rc <= 0)
			break;
		got += (uint64_t)rc;
	}
	nfs_close(p->nfs, f);
	EXPECT(p, name, rc == 0, "read at %llu: %d %s", (unsigned long long)got, rc, nfs_get_error(p->nfs));
	EXPECT(p, name, got == size, "read %llu bytes of a %llu-byte file", (unsigned long long)got, (unsigned long long)size);
	size_t at = pattern_diff(0, buf, (size_t)size);
	EXPECT(p, name, at == size, "byte %zu differs", at);
	pass(p, name, "%llu bytes written, size checked, read back byte-exact", (unsigned long long)size);
}

/* A file of `size` pattern bytes made with one FILE_SYNC WRITE; its handle. */
static int raw_file(struct probe *p, const char *name, uint32_t size, struct fh *f, struct reply *r)
{
	int st = make_file(p, &p->work, name, f, r);
	if (st != NFS3_OK || size == 0)
		return st;
	st = nfs3_write(p, f, 0, pattern_at(0, size), size, FILE_SYNC, r);
	if (st == NFS3_OK && r->count != size) {
		r->status = -1;
		snprintf(r->error, sizeof r->error, "WRITE of %u bytes wrote %u", size, r->count);
		return -1;
	}
	return st;
}

static void check_read_eof(struct probe *p)
{
	const char *name = "read-eof";
	struct reply r;
	struct fh f;
	int st = raw_file(p, "eof-file", 10000, &f, &r);
	EXPECT(p, name, st == NFS3_OK, "making a 10000-byte file: %s", why(&r));
	unsigned char buf[4096];
	r.buf = buf;
	r.buf_cap = sizeof buf;
	st = nfs3_read(p, &f, 8000, 4096, &r);
	EXPECT(p, name, st == NFS3_OK, "READ 4096 at 8000: %s", why(&r));
	/* RFC 1813 §3.3.6: a READ across the end returns what there is, with eof set. */
	EXPECT(p, name, r.count == 2000 && r.eof, "READ 4096 at 8000 of 10000: count %u eof %d, not 2000 and 1", r.count, r.eof);
	EXPECT(p, name, pattern_diff(8000, buf, 2000) == 2000, "READ across EOF returned the wrong bytes");
	st = nfs3_read(p, &f, 10000, 100, &r);
	EXPECT(p, name, st == NFS3_OK && r.count == 0 && r.eof, "READ at EOF: %s count %u eof %d, not 0 and 1", why(&r), r.count, r.eof);
	st = nfs3_read(p, &f, 20000, 100, &r);
	EXPECT(p, name, st == NFS3_OK && r.count == 0 && r.eof, "READ past EOF: %s count %u eof %d, not 0 and 1", why(&r), r.count, r.eof);
	pass(p, name, "short count 2000 with eof across the end; 0 bytes with eof at and past it");
}

static void check_write_stable(struct probe *p)
{
	const char *name = "write-stable";
	struct reply r;
	struct fh f;
	int st = make_file(p, &p->work, "stable-file", &f, &r);
	EXPECT(p, name, st == NFS3_OK, "CREATE: %s", why(&r));
	static const int levels[] = { UNSTABLE, DATA_SYNC, FILE_SYNC };
	int got[3];
	for (int i = 0; i < 3; i++) {
		st = nfs3_write(p, &f, (uint64_t)i * 4096, pattern_at((uint64_t)i * 4096, 4096), 4096, levels[i], &r);
		EXPECT(p, name, st == NFS3_OK, "WRITE stable=%d: %s", levels[i], why(&r));
		EXPECT(p, name, r.count == 4096, "WRITE stable=%d wrote %u of 4096", levels[i], r.count);
		/* RFC 1813 §3.3.7: committed is at least as stable as asked, never above FILE_SYNC. */
		EXPECT(p, name, r.committed >= levels[i] && r.committed <= FILE_SYNC, "WRITE stable=%d answered committed=%d",
		       levels[i], r.committed);
		got[i] = r.committed;
	}
	pass(p, name, "committed %d, %d, %d for UNSTABLE, DATA_SYNC, FILE_SYNC", got[0], got[1], got[2]);
}

static void check_truncate(struct probe *p)
{
	char path[512];
	path_in(p, path, sizeof path, "trunc-file");
	int rc = put_pattern(p, path, 100);
	EXPECT(p, "truncate-grow", rc == 0, "write: %d %s", rc, nfs_get_error(p->nfs));
	rc = nfs_truncate(p->nfs, path, 10000);
	EXPECT(p, "truncate-grow", rc == 0, "truncate to 10000: %s", nfs_get_error(p->nfs));
	unsigned char buf[10001];
	rc = get_text(p, path, (char *)buf, sizeof buf);
	EXPECT(p, "truncate-grow", rc == 10000, "read %d bytes after growing to 10000", rc);
	EXPECT(p, "truncate-grow", pattern_diff(0, buf, 100) == 100, "the first 100 bytes changed");
	for (int i = 100; i < 10000; i++)
		EXPECT(p, "truncate-grow", buf[i] == 0, "byte %d of the extension is 0x%02x, not 0", i, buf[i]);
	pass(p, "truncate-grow", "100 → 10000 bytes: head intact, extension reads as zeros");

	rc = nfs_truncate(p->nfs, path, 10);
	EXPECT(p, "truncate-shrink", rc == 0, "truncate to 10: %s", nfs_get_error(p->nfs));
	rc = get_text(p, path, (char *)buf, sizeof buf);
	EXPECT(p, "truncate-shrink", rc == 10 && pattern_diff(0, buf, 10) == 10, "after shrinking to 10: read %d bytes", rc);
	pass(p, "truncate-shrink", "10000 → 10 bytes, content kept");

	rc = nfs_truncate(p->nfs, path, 0);
	EXPECT(p, "truncate-zero", rc == 0, "truncate to 0: %s", nfs_get_error(p->nfs));
	struct nfs_stat_64 st;
	rc = nfs_stat64(p->nfs, path, &st);
	EXPECT(p, "truncate-zero", rc == 0 && st.nfs_size == 0, "size %llu after truncating to 0", (unsigned long long)st.nfs_size);
	rc = get_text(p, path, (char *)buf, sizeof buf);
	EXPECT(p, "truncate-zero", rc == 0, "read %d bytes of an empty file", rc);
	pass(p, "truncate-zero", "size 0, reads nothing");
}

static int all_zero(const unsigned char *b, size_t n, size_t *at)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0) {
			*at = i;
			return 0;
		}
	return 1;
}

static void check_sparse(struct probe *p)
{
	struct reply r;
	struct fh f;
	size_t at = 0;
	int st = make_file(p, &p->work, "sparse", &f, &r);
	EXPECT(p, "sparse-hole", st == NFS3_OK, "CREATE: %s", why(&r));
	st = nfs3_write(p, &f, 0, pattern_at(0, 4096), 4096, FILE_SYNC, &r);
	EXPECT(p, "sparse-hole", st == NFS3_OK && r.count == 4096, "WRITE at 0: %s", why(&r));
	st = nfs3_write(p, &f, 300000, pattern_at(300000, 4096), 4096, FILE_SYNC, &r);
	EXPECT(p, "sparse-hole", st == NFS3_OK && r.count == 4096, "WRITE at 300000: %s", why(&r));
	size_t size = 304096;
	unsigned char *buf = scratch(size);
	EXPECT(p, "sparse-hole", buf != NULL, "out of memory");
	size_t got = 0;
	while (got < size) {
		r.buf = buf + got;
		r.buf_cap = (uint32_t)(size - got < 65536 ? size - got : 65536);
		st = nfs3_read(p, &f, got, r.buf_cap, &r);
		EXPECT(p, "sparse-hole", st == NFS3_OK && r.count > 0, "READ at %zu: %s count %u", got, why(&r), r.count);
		got += r.count;
	}
	EXPECT(p, "sparse-hole", pattern_diff(0, buf, 4096) == 4096 && pattern_diff(300000, buf + 300000, 4096) == 4096,
	       "the written blocks read back wrong");
	EXPECT(p, "sparse-hole", all_zero(buf + 4096, 300000 - 4096, &at), "hole byte %zu is not zero", 4096 + at);
	pass(p, "sparse-hole", "blocks at 0 and 300000 intact, the hole between reads as zeros");

	st = make_file(p, &p->work, "sparse-lead", &f, &r);
	EXPECT(p, "sparse-leading-hole", st == NFS3_OK, "CREATE: %s", why(&r));
	st = nfs3_write(p, &f, 65536, pattern_at(65536, 4096), 4096, FILE_SYNC, &r);
	EXPECT(p, "sparse-leading-hole", st == NFS3_OK && r.count == 4096, "WRITE at 65536: %s", why(&r));
	unsigned char lead[65536 + 4096];
	got = 0;
	while (got < sizeof lead) {
		r.buf = lead + got;
		r.buf_cap = (uint32_t)(sizeof lead - got);
		st = nfs3_read(p, &f, got, r.buf_cap, &r);
		EXPECT(p, "sparse-leading-hole", st == NFS3_OK && r.count > 0, "READ at %zu: %s count %u", got, why(&r), r.count);
		got += r.count;
	}
	EXPECT(p, "sparse-leading-hole", all_zero(lead, 65536, &at), "leading hole byte %zu is not zero", at);
	EXPECT(p, "sparse-leading-hole", pattern_diff(65536, lead + 65536, 4096) == 4096, "the block at 65536 reads back wrong");
	pass(p, "sparse-leading-hole", "64 KiB of zeros, then the block written");
}

/* 1024 × 4 KiB UNSTABLE WRITEs in a shuffled order, 64 in flight, then COMMIT and read back. */
#define CW_BLOCKS 1024
#define CW_BLOCK 4096

struct cw {
	struct fh f;
	uint32_t order[CW_BLOCKS];
	unsigned char verf[NFS3_WRITEVERFSIZE];
	int have_verf;
	unsigned verf_changes, short_writes, short_reads;
	unsigned char *back;
};

static int cw_write(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct cw *w = pl->ctx;
	uint64_t off = (uint64_t)w->order[i] * CW_BLOCK;
	return q_write(pl->p, c, &w->f, off, pattern_at(off, CW_BLOCK), CW_BLOCK, UNSTABLE);
}

static void cw_written(struct pipeline *pl, struct call *c)
{
	struct cw *w = pl->ctx;
	if (c->r->status != NFS3_OK)
		return;
	if (c->r->count != CW_BLOCK)
		w->short_writes++;
	if (!w->have_verf) {
		memcpy(w->verf, c->r->verf, sizeof w->verf);
		w->have_verf = 1;
	} else if (memcmp(w->verf, c->r->verf, sizeof w->verf) != 0) {
		w->verf_changes++;
	}
}

static int cw_read(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct cw *w = pl->ctx;
	c->r->buf = w->back + i * 65536;
	c->r->buf_cap = 65536;
	return q_read(pl->p, c, &w->f, i * 65536, 65536);
}

static void cw_got(struct pipeline *pl, struct call *c)
{
	struct cw *w = pl->ctx;
	if (c->r->status == NFS3_OK && c->r->count != 65536)
		w->short_reads++;
}

static void check_concurrent_writes(struct probe *p)
{
	const char *name = "concurrent-writes-4MiB";
	static struct cw w;
	memset(&w, 0, sizeof w);
	struct reply r;
	int st = make_file(p, &p->work, "concurrent", &w.f, &r);
	EXPECT(p, name, st == NFS3_OK, "CREATE: %s", why(&r));
	uint64_t seed = 20250101;
	for (uint32_t i = 0; i < CW_BLOCKS; i++)
		w.order[i] = i;
	for (uint32_t i = CW_BLOCKS - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(rng_next(&seed) % (i + 1));
		uint32_t t = w.order[i];
		w.order[i] = w.order[j];
		w.order[j] = t;
	}
	struct pipeline pl = { .p = p, .k = 64, .n = CW_BLOCKS, .issue = cw_write, .done = cw_written, .ctx = &w };
	EXPECT(p, name, pipeline_run(&pl) == 0, "connection lost during the WRITEs");
	lat_free(&pl.lat);
	EXPECT(p, name, pl.errors == 0, "%llu WRITEs failed, first: %s", (unsigned long long)pl.errors, pl.first_error);
	EXPECT(p, name, w.short_writes == 0, "%u WRITEs wrote less than 4096 bytes", w.short_writes);
	/* RFC 1813 §3.3.7: the verifier changes only when the server loses uncommitted data. */
	EXPECT(p, name, w.verf_changes == 0, "%u WRITE verifiers differ from the first", w.verf_changes);
	st = nfs3_commit(p, &w.f, &r);
	EXPECT(p, name, st == NFS3_OK, "COMMIT: %s", why(&r));
	EXPECT(p, name, memcmp(r.verf, w.verf, sizeof w.verf) == 0, "COMMIT's verifier differs from the WRITEs'");
	w.back = scratch((size_t)CW_BLOCKS * CW_BLOCK);
	EXPECT(p, name, w.back != NULL, "out of memory");
	struct pipeline rd = { .p = p, .k = 16, .n = CW_BLOCKS * CW_BLOCK / 65536, .issue = cw_read, .done = cw_got, .ctx = &w };
	EXPECT(p, name, pipeline_run(&rd) == 0, "connection lost during the READs");
	lat_free(&rd.lat);
	EXPECT(p, name, rd.errors == 0, "%llu READs failed, first: %s", (unsigned long long)rd.errors, rd.first_error);
	EXPECT(p, name, w.short_reads == 0, "%u READs inside the file returned less than 64 KiB", w.short_reads);
	size_t at = pattern_diff(0, w.back, (size_t)CW_BLOCKS * CW_BLOCK);
	EXPECT(p, name, at == (size_t)CW_BLOCKS * CW_BLOCK, "byte %zu differs (block %zu)", at, at / CW_BLOCK);
	pass(p, name, "1024 WRITEs (shuffle seed 20250101, 64 in flight), one verifier, COMMIT agrees, 4 MiB read back byte-exact");
}

void conform_data(struct probe *p)
{
	static const uint64_t sizes[] = { 0, 1, 4095, 4096, 65537, 1048579 };
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		check_rw(p, sizes[i]);
	check_read_eof(p);
	check_write_stable(p);
	check_truncate(p);
	check_sparse(p);
	check_concurrent_writes(p);
}
