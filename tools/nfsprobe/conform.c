/*
 * The conform mode: reporting, shared helpers, the order of the checks, and
 * the checks of the export itself (FSINFO, NULL, GETATTR, PATHCONF, FSSTAT,
 * ACCESS, LOOKUP errors).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "check.h"

static void report(struct probe *p, const char *verdict, const char *name, const char *fmt, va_list ap)
{
	char detail[1024];
	vsnprintf(detail, sizeof detail, fmt, ap);
	/* One line per check, whatever the detail holds. */
	for (char *c = detail; *c != '\0'; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	printf("%s %s %s\n", verdict, name, detail);
	fflush(stdout);
	(void)p;
}

void pass(struct probe *p, const char *name, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(p, "PASS", name, fmt, ap);
	va_end(ap);
	p->passed++;
}

void fail(struct probe *p, const char *name, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	report(p, "FAIL", name, fmt, ap);
	va_end(ap);
	p->failed++;
}

/* The libnfs path of `name` inside the work directory. */
const char *path_in(struct probe *p, char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", p->work_path, name);
	return buf;
}

/* CREATE GUARDED 0644 (or MKDIR 0755) and the new object's handle, by LOOKUP if the reply had none. */
static int made(struct probe *p, const struct fh *dir, const char *name, struct fh *out, struct reply *r, int st)
{
	if (st != NFS3_OK)
		return st;
	if (!r->has_fh) {
		st = nfs3_lookup(p, dir, name, r);
		if (st != NFS3_OK)
			return st;
	}
	*out = r->fh;
	return NFS3_OK;
}

int make_file(struct probe *p, const struct fh *dir, const char *name, struct fh *out, struct reply *r)
{
	return made(p, dir, name, out, r, nfs3_create(p, dir, name, GUARDED, 0644, NULL, r));
}

int make_dir(struct probe *p, const struct fh *dir, const char *name, struct fh *out, struct reply *r)
{
	return made(p, dir, name, out, r, nfs3_mkdir(p, dir, name, 0755, r));
}

/* Create (or truncate) a file through libnfs and fill it with the pattern; 0 or -errno. */
int put_pattern(struct probe *p, const char *path, uint64_t size)
{
	struct nfsfh *f;
	int rc = nfs_create(p->nfs, path, O_RDWR | O_TRUNC, 0644, &f);
	if (rc != 0)
		return rc;
	uint64_t off = 0;
	while (off < size) {
		uint64_t n = size - off < XFER_CAP ? size - off : XFER_CAP;
		rc = nfs_pwrite(p->nfs, f, off, n, pattern_at(off, (size_t)n));
		if (rc <= 0)
			break;
		off += (uint64_t)rc;
	}
	int closed = nfs_close(p->nfs, f);
	if (off < size)
		return rc < 0 ? rc : -EIO;
	return closed;
}

int put_text(struct probe *p, const char *path, const char *text)
{
	struct nfsfh *f;
	int rc = nfs_create(p->nfs, path, O_RDWR | O_TRUNC, 0644, &f);
	if (rc != 0)
		return rc;
	size_t n = strlen(text);
	rc = nfs_pwrite(p->nfs, f, 0, n, text);
	int closed = nfs_close(p->nfs, f);
	if (rc < 0)
		return rc;
	return (size_t)rc == n ? closed : -EIO;
}

/* A small file's whole content as a string; its length or -errno. */
int get_text(struct probe *p, const char *path, char *buf, size_t cap)
{
	struct nfsfh *f;
	int rc = nfs_open(p->nfs, path, O_RDONLY, &f);
	if (rc != 0)
		return rc;
	rc = nfs_pread(p->nfs, f, 0, cap - 1, buf);
	nfs_close(p->nfs, f);
	buf[rc > 0 ? rc : 0] = '\0';
	return rc;
}

static void check_fsinfo(struct probe *p)
{
	const char *name = "fsinfo";
	EXPECT(p, name, p->have_fsinfo, "FSINFO of the root failed");
	const FSINFO3resok *f = &p->fsinfo;
	EXPECT(p, name, f->rtmax > 0 && f->wtmax > 0 && f->dtpref > 0, "rtmax %u wtmax %u dtpref %u: all must be > 0",
	       f->rtmax, f->wtmax, f->dtpref);
	EXPECT(p, name, f->rtpref <= f->rtmax && f->wtpref <= f->wtmax, "preferred sizes above the maxima (rtpref %u rtmax %u wtpref %u wtmax %u)",
	       f->rtpref, f->rtmax, f->wtpref, f->wtmax);
	pass(p, name, "rtmax %u rtpref %u rtmult %u wtmax %u wtpref %u wtmult %u dtpref %u maxfilesize %llu time_delta %u.%09u properties 0x%x",
	     f->rtmax, f->rtpref, f->rtmult, f->wtmax, f->wtpref, f->wtmult, f->dtpref, (unsigned long long)f->maxfilesize,
	     f->time_delta.seconds, f->time_delta.nseconds, f->properties);
}

static void check_null(struct probe *p)
{
	struct reply r;
	int st = nfs3_null(p, &r);
	EXPECT(p, "null", st == NFS3_OK, "NULL: %s", why(&r));
	pass(p, "null", "NFSPROC3_NULL answered");
}

static void check_getattr_root(struct probe *p)
{
	struct reply r;
	int st = nfs3_getattr(p, &p->root, &r);
	EXPECT(p, "getattr-root", st == NFS3_OK, "GETATTR: %s", why(&r));
	EXPECT(p, "getattr-root", r.attr.type == NF3DIR, "root is of type %d, not a directory", (int)r.attr.type);
	pass(p, "getattr-root", "directory, mode %o, fileid %llu", r.attr.mode & 07777, (unsigned long long)r.attr.fileid);
}

static void check_pathconf(struct probe *p)
{
	struct reply r;
	int st = nfs3_pathconf(p, &p->root, &r);
	EXPECT(p, "pathconf", st == NFS3_OK, "PATHCONF: %s", why(&r));
	EXPECT(p, "pathconf", r.pathconf.name_max > 0 && r.pathconf.linkmax > 0, "name_max %u linkmax %u: both must be > 0",
	       r.pathconf.name_max, r.pathconf.linkmax);
	p->name_max = r.pathconf.name_max;
	pass(p, "pathconf", "linkmax %u name_max %u no_trunc %u chown_restricted %u case_insensitive %u case_preserving %u",
	     r.pathconf.linkmax, r.pathconf.name_max, r.pathconf.no_trunc, r.pathconf.chown_restricted,
	     r.pathconf.case_insensitive, r.pathconf.case_preserving);
}

static void check_statvfs(struct probe *p)
{
	const char *name = "statvfs";
	struct nfs_statvfs_64 sv;
	int rc = nfs_statvfs64(p->nfs, p->work_path, &sv);
	EXPECT(p, name, rc == 0, "nfs_statvfs64: %s", nfs_get_error(p->nfs));
	EXPECT(p, name, sv.f_bfree <= sv.f_blocks && sv.f_bavail <= sv.f_bfree, "blocks %llu free %llu avail %llu",
	       (unsigned long long)sv.f_blocks, (unsigned long long)sv.f_bfree, (unsigned long long)sv.f_bavail);
	EXPECT(p, name, sv.f_ffree <= sv.f_files && sv.f_favail <= sv.f_ffree, "files %llu free %llu avail %llu",
	       (unsigned long long)sv.f_files, (unsigned long long)sv.f_ffree, (unsigned long long)sv.f_favail);
	struct reply r;
	int st = nfs3_fsstat(p, &p->work, &r);
	EXPECT(p, name, st == NFS3_OK, "FSSTAT: %s", why(&r));
	const FSSTAT3resok *s = &r.fsstat;
	/* RFC 1813 §3.3.18: free ≤ total, available (to this user) ≤ free. */
	EXPECT(p, name, s->fbytes <= s->tbytes && s->abytes <= s->fbytes, "FSSTAT bytes: total %llu free %llu avail %llu",
	       (unsigned long long)s->tbytes, (unsigned long long)s->fbytes, (unsigned long long)s->abytes);
	EXPECT(p, name, s->ffiles <= s->tfiles && s->afiles <= s->ffiles, "FSSTAT files: total %llu free %llu avail %llu",
	       (unsigned long long)s->tfiles, (unsigned long long)s->ffiles, (unsigned long long)s->afiles);
	pass(p, name, "%llu of %llu bytes free, %llu of %llu files free", (unsigned long long)s->fbytes,
	     (unsigned long long)s->tbytes, (unsigned long long)s->ffiles, (unsigned long long)s->tfiles);
}

static void check_access(struct probe *p)
{
	const char *name = "access";
	char path[512], missing[512];
	int rc = put_text(p, path_in(p, path, sizeof path, "access-file"), "access\n");
	EXPECT(p, name, rc == 0, "create: %s", nfs_get_error(p->nfs));
	rc = nfs_access(p->nfs, path, R_OK | W_OK);
	EXPECT(p, name, rc == 0, "access(R_OK|W_OK) of our own 0644 file: %d %s", rc, nfs_get_error(p->nfs));
	struct reply r;
	struct fh f;
	int st = nfs3_lookup(p, &p->work, "access-file", &r);
	EXPECT(p, name, st == NFS3_OK, "LOOKUP: %s", why(&r));
	f = r.fh;
	uint32_t want = ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND;
	st = nfs3_access(p, &f, want | ACCESS3_LOOKUP, &r);
	EXPECT(p, name, st == NFS3_OK, "ACCESS: %s", why(&r));
	/* RFC 1813 §3.3.4: the owner of a 0644 file may read, modify and extend it. */
	EXPECT(p, name, (r.access & want) == want, "ACCESS granted 0x%x of 0x%x", r.access, want);
	rc = nfs_access(p->nfs, path_in(p, missing, sizeof missing, "access-missing"), R_OK);
	EXPECT(p, name, rc == -ENOENT, "access() of a missing name: %d, not -ENOENT", rc);
	pass(p, name, "owner granted 0x%x (READ|MODIFY|EXTEND asked); missing name ENOENT", r.access);
}

static void check_lookup_enoent(struct probe *p)
{
	const char *name = "lookup-enoent";
	char path[512];
	struct nfs_stat_64 st64;
	int rc = nfs_stat64(p->nfs, path_in(p, path, sizeof path, "no-such-name"), &st64);
	EXPECT(p, name, rc == -ENOENT, "stat of a missing name: %d, not -ENOENT", rc);
	struct reply r;
	int st = nfs3_lookup(p, &p->work, "no-such-name", &r);
	EXPECT(p, name, st == NFS3ERR_NOENT, "LOOKUP of a missing name: %s, not NFS3ERR_NOENT", why(&r));
	pass(p, name, "stat -ENOENT, LOOKUP NFS3ERR_NOENT");
}

static void check_lookup_notdir(struct probe *p)
{
	const char *name = "lookup-notdir";
	struct reply r;
	struct fh f;
	int st = make_file(p, &p->work, "plain-file", &f, &r);
	EXPECT(p, name, st == NFS3_OK, "CREATE: %s", why(&r));
	st = nfs3_lookup(p, &f, "x", &r);
	/* RFC 1813 §3.3.3: LOOKUP in something that is not a directory is NFS3ERR_NOTDIR. */
	EXPECT(p, name, st == NFS3ERR_NOTDIR, "LOOKUP with a file's handle as directory: %s, not NFS3ERR_NOTDIR", why(&r));
	pass(p, name, "NFS3ERR_NOTDIR");
}

void conform_basics(struct probe *p)
{
	check_fsinfo(p);
	check_null(p);
	check_getattr_root(p);
	check_pathconf(p);
}

static void conform_export(struct probe *p)
{
	check_statvfs(p);
	check_access(p);
	check_lookup_enoent(p);
	check_lookup_notdir(p);
}

static void check_cleanup(struct probe *p)
{
	const char *name = "cleanup";
	int rc = remove_tree(p, p->work_path, 0);
	EXPECT(p, name, rc == 0, "removing %s: %d %s", p->work_path, rc, nfs_get_error(p->nfs));
	struct nfs_stat_64 st64;
	rc = nfs_stat64(p->nfs, p->work_path, &st64);
	EXPECT(p, name, rc == -ENOENT, "stat of the removed work directory: %d, not -ENOENT", rc);
	pass(p, name, "%s removed", p->work_path);
}

int run_conform(struct probe *p)
{
	conform_basics(p);
	if (make_work_dir(p) != 0) {
		fail(p, "workdir", "could not make the work directory %s", p->work_name);
	} else {
		pass(p, "workdir", "%s", p->work_path);
		static void (*const groups[])(struct probe *) = {
			conform_export, conform_data, conform_dirs, conform_names, conform_attrs, conform_create,
		};
		for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
			/* Without a connection every further check would only wait out its timeouts. */
			if (p->dead) {
				fail(p, "connection", "lost; the remaining checks were not run");
				break;
			}
			groups[i](p);
		}
		if (!p->opt.keep && !p->dead)
			check_cleanup(p);
	}
	printf("%u passed, %u failed\n", p->passed, p->failed);
	fflush(stdout);
	return p->failed == 0 ? 0 : 1;
}
