/*
 * Checks of attributes: modes, times set by the client (to the nanosecond)
 * and by the server, SETATTR's ctime guard, and the times of a directory
 * whose entries change.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include "check.h"

static void check_chmod(struct probe *p)
{
	char path[512];
	int rc = put_text(p, path_in(p, path, sizeof path, "mode-file"), "mode\n");
	EXPECT(p, "chmod", rc == 0, "create: %s", nfs_get_error(p->nfs));
	static const int modes[] = { 0600, 0755, 0640, 0 };
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		struct nfs_stat_64 st;
		rc = nfs_chmod(p->nfs, path, modes[i]);
		EXPECT(p, "chmod", rc == 0, "chmod %o: %s", modes[i], nfs_get_error(p->nfs));
		rc = nfs_stat64(p->nfs, path, &st);
		EXPECT(p, "chmod", rc == 0 && (st.nfs_mode & 07777) == (uint64_t)modes[i], "mode %llo after chmod %o",
		       (unsigned long long)(st.nfs_mode & 07777), modes[i]);
	}
	pass(p, "chmod", "0600, 0755, 0640, 0 read back");

	rc = nfs_mkdir(p->nfs, path_in(p, path, sizeof path, "mode-dir"));
	EXPECT(p, "chmod-dir", rc == 0, "mkdir: %s", nfs_get_error(p->nfs));
	rc = nfs_chmod(p->nfs, path, 0711);
	EXPECT(p, "chmod-dir", rc == 0, "chmod 711: %s", nfs_get_error(p->nfs));
	struct nfs_stat_64 st;
	rc = nfs_stat64(p->nfs, path, &st);
	EXPECT(p, "chmod-dir", rc == 0 && (st.nfs_mode & 07777) == 0711 && (st.nfs_mode & 0170000) == 0040000,
	       "mode %llo after chmod 711", (unsigned long long)st.nfs_mode);
	pass(p, "chmod-dir", "0711 on a directory read back");
}

/* |got - want| within the server's FSINFO time_delta (RFC 1813 §3.3.19); exact when it claims 1 ns. */
static int same_time(const struct probe *p, const nfstime3 *got, const nfstime3 *want)
{
	long long d = ((long long)got->seconds - (long long)want->seconds) * 1000000000LL + ((long long)got->nseconds - (long long)want->nseconds);
	if (d < 0)
		d = -d;
	long long delta = p->have_fsinfo ? (long long)p->fsinfo.time_delta.seconds * 1000000000LL + p->fsinfo.time_delta.nseconds : 1;
	return delta <= 1 ? d == 0 : d < delta;
}

static void check_times(struct probe *p)
{
	char path[512];
	int rc = put_text(p, path_in(p, path, sizeof path, "time-file"), "time\n");
	EXPECT(p, "utimes", rc == 0, "create: %s", nfs_get_error(p->nfs));
	struct timeval tv[2] = { { .tv_sec = 1234567890, .tv_usec = 123456 }, { .tv_sec = 1300000000, .tv_usec = 654321 } };
	rc = nfs_utimes(p->nfs, path, tv);
	EXPECT(p, "utimes", rc == 0, "utimes: %s", nfs_get_error(p->nfs));
	struct nfs_stat_64 st;
	rc = nfs_stat64(p->nfs, path, &st);
	EXPECT(p, "utimes", rc == 0, "stat: %s", nfs_get_error(p->nfs));
	EXPECT(p, "utimes", st.nfs_atime == 1234567890 && st.nfs_atime_nsec == 123456000 && st.nfs_mtime == 1300000000 &&
				    st.nfs_mtime_nsec == 654321000,
	       "atime %llu.%09llu mtime %llu.%09llu, set 1234567890.123456000 and 1300000000.654321000",
	       (unsigned long long)st.nfs_atime, (unsigned long long)st.nfs_atime_nsec, (unsigned long long)st.nfs_mtime,
	       (unsigned long long)st.nfs_mtime_nsec);
	pass(p, "utimes", "atime and mtime with microseconds read back to the nanosecond");

	struct reply r = { 0 };
	int s = nfs3_lookup(p, &p->work, "time-file", &r);
	EXPECT(p, "setattr-times-ns", s == NFS3_OK, "LOOKUP: %s", why(&r));
	struct fh f = r.fh;
	sattr3 set = sattr_none();
	nfstime3 at = { .seconds = 1111111111, .nseconds = 987654321 }, mt = { .seconds = 1222222222, .nseconds = 1 };
	set.atime.set_it = SET_TO_CLIENT_TIME;
	set.atime.set_atime_u.atime = at;
	set.mtime.set_it = SET_TO_CLIENT_TIME;
	set.mtime.set_mtime_u.mtime = mt;
	s = nfs3_setattr(p, &f, &set, NULL, &r);
	EXPECT(p, "setattr-times-ns", s == NFS3_OK, "SETATTR: %s", why(&r));
	s = nfs3_getattr(p, &f, &r);
	EXPECT(p, "setattr-times-ns", s == NFS3_OK, "GETATTR: %s", why(&r));
	EXPECT(p, "setattr-times-ns", same_time(p, &r.attr.atime, &at) && same_time(p, &r.attr.mtime, &mt),
	       "atime %u.%09u mtime %u.%09u, set %u.%09u and %u.%09u", r.attr.atime.seconds, r.attr.atime.nseconds,
	       r.attr.mtime.seconds, r.attr.mtime.nseconds, at.seconds, at.nseconds, mt.seconds, mt.nseconds);
	pass(p, "setattr-times-ns", "SET_TO_CLIENT_TIME %u.%09u and %u.%09u read back (time_delta %u.%09u)", at.seconds, at.nseconds,
	     mt.seconds, mt.nseconds, p->fsinfo.time_delta.seconds, p->fsinfo.time_delta.nseconds);

	nfstime3 ctime_before = r.attr.ctime;
	set = sattr_none();
	set.atime.set_it = SET_TO_SERVER_TIME;
	set.mtime.set_it = SET_TO_SERVER_TIME;
	s = nfs3_setattr(p, &f, &set, NULL, &r);
	EXPECT(p, "setattr-server-time", s == NFS3_OK, "SETATTR: %s", why(&r));
	s = nfs3_getattr(p, &f, &r);
	EXPECT(p, "setattr-server-time", s == NFS3_OK, "GETATTR: %s", why(&r));
	/* Both clocks are the server's: the times it set cannot be older than the last change. */
	EXPECT(p, "setattr-server-time", !time_after(&ctime_before, &r.attr.mtime) && !time_after(&ctime_before, &r.attr.atime),
	       "mtime %u.%09u atime %u.%09u before the previous ctime %u.%09u", r.attr.mtime.seconds, r.attr.mtime.nseconds,
	       r.attr.atime.seconds, r.attr.atime.nseconds, ctime_before.seconds, ctime_before.nseconds);
	pass(p, "setattr-server-time", "SET_TO_SERVER_TIME: mtime %u.%09u", r.attr.mtime.seconds, r.attr.mtime.nseconds);

	/* RFC 1813 §3.3.2: with a guard, SETATTR applies only if the object's ctime is the one given. */
	nfstime3 wrong = r.attr.ctime;
	wrong.seconds -= 1;
	set = sattr_none();
	set.mode.set_it = 1;
	set.mode.set_mode3_u.mode = 0600;
	s = nfs3_setattr(p, &f, &set, &wrong, &r);
	EXPECT(p, "setattr-guard", s == NFS3ERR_NOT_SYNC, "SETATTR with a stale ctime guard: %s, not NFS3ERR_NOT_SYNC", why(&r));
	s = nfs3_getattr(p, &f, &r);
	EXPECT(p, "setattr-guard", s == NFS3_OK && (r.attr.mode & 07777) != 0600, "the refused SETATTR changed the mode to %o",
	       r.attr.mode & 07777);
	nfstime3 right = r.attr.ctime;
	s = nfs3_setattr(p, &f, &set, &right, &r);
	EXPECT(p, "setattr-guard", s == NFS3_OK, "SETATTR with the current ctime as guard: %s", why(&r));
	s = nfs3_getattr(p, &f, &r);
	EXPECT(p, "setattr-guard", s == NFS3_OK && (r.attr.mode & 07777) == 0600, "mode %o after the guarded SETATTR", r.attr.mode & 07777);
	pass(p, "setattr-guard", "stale guard NFS3ERR_NOT_SYNC and nothing changed; current guard applied");
}

/* The directory's mtime is set back to 2001, then an entry is made or removed: mtime and ctime must advance. */
static void dir_times(struct probe *p, const char *name, const struct fh *dir, int create)
{
	struct reply r = { 0 };
	sattr3 set = sattr_none();
	nfstime3 old = { .seconds = 978307200, .nseconds = 0 };
	set.mtime.set_it = SET_TO_CLIENT_TIME;
	set.mtime.set_mtime_u.mtime = old;
	int s = nfs3_setattr(p, dir, &set, NULL, &r);
	EXPECT(p, name, s == NFS3_OK, "SETATTR mtime: %s", why(&r));
	s = nfs3_getattr(p, dir, &r);
	EXPECT(p, name, s == NFS3_OK, "GETATTR: %s", why(&r));
	nfstime3 ctime0 = r.attr.ctime;
	/* Past the granularity of any server clock we know, so "later" is visible. */
	sleep_ms(30);
	struct fh f;
	s = create ? make_file(p, dir, "entry", &f, &r) : nfs3_remove(p, dir, "entry", &r);
	EXPECT(p, name, s == NFS3_OK, "%s: %s", create ? "CREATE" : "REMOVE", why(&r));
	s = nfs3_getattr(p, dir, &r);
	EXPECT(p, name, s == NFS3_OK, "GETATTR: %s", why(&r));
	EXPECT(p, name, time_after(&r.attr.mtime, &old), "mtime still %u.%09u after %s", r.attr.mtime.seconds,
	       r.attr.mtime.nseconds, create ? "CREATE" : "REMOVE");
	EXPECT(p, name, time_after(&r.attr.ctime, &ctime0), "ctime %u.%09u not after %u.%09u", r.attr.ctime.seconds,
	       r.attr.ctime.nseconds, ctime0.seconds, ctime0.nseconds);
	pass(p, name, "%s advanced the directory's mtime (from 2001) and ctime", create ? "CREATE" : "REMOVE");
}

static void check_dir_times(struct probe *p)
{
	struct reply r = { 0 };
	struct fh dir;
	int s = make_dir(p, &p->work, "times-dir", &dir, &r);
	EXPECT(p, "dir-times-create", s == NFS3_OK, "MKDIR: %s", why(&r));
	dir_times(p, "dir-times-create", &dir, 1);
	dir_times(p, "dir-times-remove", &dir, 0);
}

void conform_attrs(struct probe *p)
{
	check_chmod(p);
	check_times(p);
	check_dir_times(p);
}
