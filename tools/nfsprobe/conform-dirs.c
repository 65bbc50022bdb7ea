/*
 * Checks of directories: a nested tree, listing 1000 names with READDIR
 * and READDIRPLUS in small pages and through libnfs, removing them with
 * REMOVEs in flight, REMOVE and RMDIR errors, and stale handles.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"

static void check_mkdir_tree(struct probe *p)
{
	const char *name = "mkdir-tree";
	char rel[128] = "tree", path[512], file[600];
	int rc = nfs_mkdir(p->nfs, path_in(p, path, sizeof path, rel));
	EXPECT(p, name, rc == 0, "mkdir %s: %s", rel, nfs_get_error(p->nfs));
	for (int level = 1; level <= 4; level++) {
		size_t n = strlen(rel);
		snprintf(rel + n, sizeof rel - n, "/d%d", level);
		rc = nfs_mkdir(p->nfs, path_in(p, path, sizeof path, rel));
		EXPECT(p, name, rc == 0, "mkdir %s: %s", rel, nfs_get_error(p->nfs));
		snprintf(file, sizeof file, "%s/file", path);
		char text[8] = "abcd";
		text[level] = '\0';
		rc = put_text(p, file, text);
		EXPECT(p, name, rc == 0, "create %s: %s", file, nfs_get_error(p->nfs));
	}
	/* Walk down with raw LOOKUPs: every level a directory, every file its size. */
	static const char *const parts[] = { "tree", "d1", "d2", "d3", "d4" };
	struct fh dir = p->work;
	struct reply r = { 0 };
	for (int i = 0; i < 5; i++) {
		int st = nfs3_lookup(p, &dir, parts[i], &r);
		EXPECT(p, name, st == NFS3_OK, "LOOKUP %s: %s", parts[i], why(&r));
		EXPECT(p, name, r.has_attr && r.attr.type == NF3DIR, "%s is not a directory (type %d)", parts[i], (int)r.attr.type);
		dir = r.fh;
		if (i == 0)
			continue;
		int st2 = nfs3_lookup(p, &dir, "file", &r);
		EXPECT(p, name, st2 == NFS3_OK, "LOOKUP %s/file: %s", parts[i], why(&r));
		EXPECT(p, name, r.has_attr && r.attr.type == NF3REG && r.attr.size == (uint64_t)i,
		       "%s/file: type %d size %llu, not a regular file of %d bytes", parts[i], (int)r.attr.type,
		       (unsigned long long)r.attr.size, i);
	}
	pass(p, name, "tree/d1/d2/d3/d4, a file in each; types and sizes by LOOKUP");
}

/* The 1000 names: 6 to 46 bytes, ten of them with UTF-8 ("été"), kept sorted for lookups. */
#define MANY 1000
#define MANY_NAME 64

static char many[MANY][MANY_NAME];

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void make_names(void)
{
	for (unsigned i = 0; i < MANY; i++) {
		char *s = many[i];
		int n = snprintf(s, MANY_NAME, i % 100 == 42 ? "e%04u-\xc3\xa9t\xc3\xa9" : "e%04u-", i);
		unsigned len = 6 + (i * 7) % 41;
		for (unsigned j = (unsigned)n; j < len && j < MANY_NAME - 1; j++)
			s[j] = (char)('a' + (i + j) % 26);
		s[len > (unsigned)n ? len : (unsigned)n] = '\0';
	}
	qsort(many, MANY, MANY_NAME, cmp_name);
}

struct listing {
	unsigned char seen[MANY];
	unsigned entries, dups, unknown;
	char first_unknown[MANY_NAME];
	/* READDIRPLUS */
	int plus;
	unsigned no_attr, wrong_attr, no_fh;
	struct fh sample[8];
	uint64_t sample_id[8];
	unsigned samples;
};

static void see(struct listing *l, const char *name, size_t len)
{
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return;
	l->entries++;
	char key[MANY_NAME];
	if (len >= MANY_NAME) {
		l->unknown++;
		return;
	}
	memcpy(key, name, len);
	key[len] = '\0';
	const char (*hit)[MANY_NAME] = bsearch(key, many, MANY, MANY_NAME, cmp_name);
	if (hit == NULL) {
		if (l->unknown++ == 0)
			snprintf(l->first_unknown, sizeof l->first_unknown, "%s", key);
		return;
	}
	size_t i = (size_t)(hit - many);
	if (l->seen[i]++)
		l->dups++;
}

static void visit(void *ctx, const struct dirent3 *e)
{
	struct listing *l = ctx;
	if ((e->name_len == 1 && e->name[0] == '.') || (e->name_len == 2 && memcmp(e->name, "..", 2) == 0))
		return;
	see(l, e->name, e->name_len);
	if (!l->plus)
		return;
	if (!e->has_attr)
		l->no_attr++;
	else if (e->attr->type != NF3REG || e->attr->fileid != e->fileid)
		l->wrong_attr++;
	if (!e->has_fh)
		l->no_fh++;
	else if (l->samples < 8 && e->has_attr) {
		l->sample[l->samples] = *e->fh;
		l->sample_id[l->samples++] = e->fileid;
	}
}

/* The listing holds each of the 1000 names exactly once and nothing else. */
static int complete(struct probe *p, const char *name, const struct listing *l)
{
	unsigned missing = 0, first = MANY;
	for (unsigned i = 0; i < MANY; i++)
		if (!l->seen[i] && missing++ == 0)
			first = i;
	if (l->dups != 0 || l->unknown != 0 || missing != 0) {
		fail(p, name, "%u entries: %u duplicates, %u unknown (first '%s'), %u missing (first '%s')", l->entries, l->dups,
		     l->unknown, l->first_unknown, missing, first < MANY ? many[first] : "");
		return 0;
	}
	return 1;
}

struct many_ctx {
	struct fh dir;
};

static int create_one(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct many_ctx *m = pl->ctx;
	return q_create(pl->p, c, &m->dir, many[i], GUARDED, 0644, NULL);
}

static int remove_one(struct pipeline *pl, struct call *c, uint64_t i)
{
	struct many_ctx *m = pl->ctx;
	return q_remove(pl->p, c, &m->dir, many[i]);
}

/* Page through the directory with READDIR (plus = 0) or READDIRPLUS; the number of calls, or -1 after a FAIL. */
static int page(struct probe *p, const char *name, const struct fh *dir, int plus, uint32_t count, uint32_t maxcount,
		struct listing *l)
{
	uint64_t cookie = 0;
	unsigned char verf[NFS3_COOKIEVERFSIZE] = { 0 };
	struct reply r = { 0 };
	r.on_entry = visit;
	r.entry_ctx = l;
	for (int calls = 1; calls <= 10000; calls++) {
		int st = plus ? nfs3_readdirplus(p, dir, cookie, verf, count, maxcount, &r) : nfs3_readdir(p, dir, cookie, verf, count, &r);
		if (st != NFS3_OK) {
			fail(p, name, "%s at cookie %llu (call %d): %s", plus ? "READDIRPLUS" : "READDIR", (unsigned long long)cookie,
			     calls, why(&r));
			return -1;
		}
		/* RFC 1813 §3.3.16/§3.3.17: count (maxcount) bounds the whole reply. */
		uint32_t cap = plus ? maxcount : count;
		if (r.est_bytes > cap) {
			fail(p, name, "call %d: a reply of about %llu bytes for a limit of %u", calls, (unsigned long long)r.est_bytes, cap);
			return -1;
		}
		if (r.eof)
			return calls;
		if (r.entries == 0) {
			fail(p, name, "call %d: no entries and no eof at cookie %llu", calls, (unsigned long long)cookie);
			return -1;
		}
		cookie = r.last_cookie;
		memcpy(verf, r.cookieverf, sizeof verf);
	}
	fail(p, name, "no eof after 10000 calls");
	return -1;
}

static void check_many(struct probe *p)
{
	struct many_ctx m;
	struct reply r = { 0 };
	make_names();
	int st = make_dir(p, &p->work, "many", &m.dir, &r);
	EXPECT(p, "readdir-1000", st == NFS3_OK, "MKDIR many: %s", why(&r));
	struct pipeline pl = { .p = p, .k = 32, .n = MANY, .issue = create_one, .ctx = &m };
	EXPECT(p, "readdir-1000", pipeline_run(&pl) == 0, "connection lost during the CREATEs");
	lat_free(&pl.lat);
	EXPECT(p, "readdir-1000", pl.errors == 0, "%llu CREATEs failed, first: %s", (unsigned long long)pl.errors, pl.first_error);

	static struct listing l;
	memset(&l, 0, sizeof l);
	int calls = page(p, "readdir-1000", &m.dir, 0, 1024, 0, &l);
	if (calls > 0 && complete(p, "readdir-1000", &l))
		pass(p, "readdir-1000", "1000 names in %d READDIR calls of count 1024, cookie verifier passed back", calls);

	memset(&l, 0, sizeof l);
	l.plus = 1;
	calls = page(p, "readdirplus-1000", &m.dir, 1, 1024, 8192, &l);
	if (calls > 0 && complete(p, "readdirplus-1000", &l)) {
		if (l.no_attr != 0 || l.wrong_attr != 0 || l.no_fh != 0) {
			fail(p, "readdirplus-1000", "%u entries without attributes, %u with a wrong type or fileid, %u without a handle",
			     l.no_attr, l.wrong_attr, l.no_fh);
		} else {
			unsigned bad = 0;
			for (unsigned i = 0; i < l.samples; i++)
				if (nfs3_getattr(p, &l.sample[i], &r) != NFS3_OK || r.attr.fileid != l.sample_id[i])
					bad++;
			if (bad != 0)
				fail(p, "readdirplus-1000", "%u of %u entry handles do not GETATTR to the entry's fileid", bad, l.samples);
			else
				pass(p, "readdirplus-1000", "1000 names in %d calls (dircount 1024, maxcount 8192), attributes and handles on all",
				     calls);
		}
	}

	memset(&l, 0, sizeof l);
	char path[512];
	struct nfsdir *d;
	if (nfs_opendir(p->nfs, path_in(p, path, sizeof path, "many"), &d) != 0) {
		fail(p, "opendir-libnfs-1000", "nfs_opendir: %s", nfs_get_error(p->nfs));
	} else {
		struct nfsdirent *e;
		while ((e = nfs_readdir(p->nfs, d)) != NULL)
			see(&l, e->name, strnlen(e->name, NAME_CAP));
		nfs_closedir(p->nfs, d);
		if (complete(p, "opendir-libnfs-1000", &l))
			pass(p, "opendir-libnfs-1000", "libnfs's opendir/readdir lists the same 1000 names");
	}

	struct pipeline rm = { .p = p, .k = 32, .n = MANY, .issue = remove_one, .ctx = &m };
	EXPECT(p, "remove-1000", pipeline_run(&rm) == 0, "connection lost during the REMOVEs");
	lat_free(&rm.lat);
	EXPECT(p, "remove-1000", rm.errors == 0, "%llu REMOVEs failed, first: %s", (unsigned long long)rm.errors, rm.first_error);
	memset(&l, 0, sizeof l);
	EXPECT(p, "remove-1000", page(p, "remove-1000", &m.dir, 0, 4096, 0, &l) > 0, "listing after the REMOVEs failed");
	EXPECT(p, "remove-1000", l.entries == 0, "%u entries left after removing all", l.entries);
	st = nfs3_rmdir(p, &p->work, "many", &r);
	EXPECT(p, "remove-1000", st == NFS3_OK, "RMDIR of the emptied directory: %s", why(&r));
	pass(p, "remove-1000", "1000 REMOVEs, 32 in flight; the directory lists empty and RMDIR succeeds");
}

static void check_remove(struct probe *p)
{
	const char *name = "remove";
	char path[512];
	int rc = put_text(p, path_in(p, path, sizeof path, "rm-file"), "bye\n");
	EXPECT(p, name, rc == 0, "create: %s", nfs_get_error(p->nfs));
	rc = nfs_unlink(p->nfs, path);
	EXPECT(p, name, rc == 0, "unlink: %s", nfs_get_error(p->nfs));
	struct nfs_stat_64 st64;
	rc = nfs_stat64(p->nfs, path, &st64);
	EXPECT(p, name, rc == -ENOENT, "stat after unlink: %d, not -ENOENT", rc);
	rc = nfs_unlink(p->nfs, path);
	EXPECT(p, name, rc == -ENOENT, "second unlink: %d, not -ENOENT", rc);
	struct reply r = { 0 };
	int st = nfs3_remove(p, &p->work, "rm-file", &r);
	EXPECT(p, name, st == NFS3ERR_NOENT, "REMOVE of the removed name: %s, not NFS3ERR_NOENT", why(&r));
	pass(p, name, "gone after unlink; unlink again -ENOENT, REMOVE NFS3ERR_NOENT");
}

static void check_stale_handle(struct probe *p)
{
	const char *name = "stale-handle";
	struct reply r = { 0 };
	struct fh f;
	int st = make_file(p, &p->work, "stale-file", &f, &r);
	EXPECT(p, name, st == NFS3_OK, "CREATE: %s", why(&r));
	st = nfs3_remove(p, &p->work, "stale-file", &r);
	EXPECT(p, name, st == NFS3_OK, "REMOVE: %s", why(&r));
	st = nfs3_getattr(p, &f, &r);
	/* RFC 1813 §2.6: a handle whose file no longer exists is NFS3ERR_STALE. */
	EXPECT(p, name, st == NFS3ERR_STALE, "GETATTR of a removed file's handle: %s, not NFS3ERR_STALE", why(&r));
	pass(p, name, "GETATTR of a removed file's handle: NFS3ERR_STALE");
}

static void check_rmdir(struct probe *p)
{
	char dir[512], file[600];
	struct reply r = { 0 };
	path_in(p, dir, sizeof dir, "rmd");
	snprintf(file, sizeof file, "%s/inside", dir);
	int rc = nfs_mkdir(p->nfs, dir);
	EXPECT(p, "rmdir-notempty", rc == 0, "mkdir: %s", nfs_get_error(p->nfs));
	rc = put_text(p, file, "x");
	EXPECT(p, "rmdir-notempty", rc == 0, "create: %s", nfs_get_error(p->nfs));
	rc = nfs_rmdir(p->nfs, dir);
	EXPECT(p, "rmdir-notempty", rc == -ENOTEMPTY, "rmdir of a non-empty directory: %d, not -ENOTEMPTY", rc);
	int st = nfs3_rmdir(p, &p->work, "rmd", &r);
	EXPECT(p, "rmdir-notempty", st == NFS3ERR_NOTEMPTY, "RMDIR of a non-empty directory: %s, not NFS3ERR_NOTEMPTY", why(&r));
	pass(p, "rmdir-notempty", "-ENOTEMPTY and NFS3ERR_NOTEMPTY");

	rc = nfs_unlink(p->nfs, file);
	EXPECT(p, "rmdir-empty", rc == 0, "unlink: %s", nfs_get_error(p->nfs));
	rc = nfs_rmdir(p->nfs, dir);
	EXPECT(p, "rmdir-empty", rc == 0, "rmdir of the emptied directory: %s", nfs_get_error(p->nfs));
	struct nfs_stat_64 st64;
	rc = nfs_stat64(p->nfs, dir, &st64);
	EXPECT(p, "rmdir-empty", rc == -ENOENT, "stat after rmdir: %d, not -ENOENT", rc);
	pass(p, "rmdir-empty", "removed once empty");

	struct fh f;
	st = make_file(p, &p->work, "not-a-dir", &f, &r);
	EXPECT(p, "rmdir-notdir", st == NFS3_OK, "CREATE: %s", why(&r));
	st = nfs3_rmdir(p, &p->work, "not-a-dir", &r);
	EXPECT(p, "rmdir-notdir", st == NFS3ERR_NOTDIR, "RMDIR of a regular file: %s, not NFS3ERR_NOTDIR", why(&r));
	pass(p, "rmdir-notdir", "RMDIR of a regular file: NFS3ERR_NOTDIR");

	rc = nfs_mkdir(p->nfs, path_in(p, dir, sizeof dir, "twice"));
	EXPECT(p, "mkdir-eexist", rc == 0, "mkdir: %s", nfs_get_error(p->nfs));
	rc = nfs_mkdir(p->nfs, dir);
	EXPECT(p, "mkdir-eexist", rc == -EEXIST, "second mkdir: %d, not -EEXIST", rc);
	st = nfs3_mkdir(p, &p->work, "twice", 0755, &r);
	EXPECT(p, "mkdir-eexist", st == NFS3ERR_EXIST, "MKDIR of an existing name: %s, not NFS3ERR_EXIST", why(&r));
	pass(p, "mkdir-eexist", "-EEXIST and NFS3ERR_EXIST");
}

void conform_dirs(struct probe *p)
{
	check_mkdir_tree(p);
	check_many(p);
	check_remove(p);
	check_stale_handle(p);
	check_rmdir(p);
}
