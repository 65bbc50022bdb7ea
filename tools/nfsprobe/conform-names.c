/*
 * Checks of names: RENAME (plain, over an existing file, a directory),
 * hard links and their counts, symlinks, and the longest name allowed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "check.h"

static int stat_in(struct probe *p, const char *name, struct nfs_stat_64 *st)
{
	char path[512];
	return nfs_stat64(p->nfs, path_in(p, path, sizeof path, name), st);
}

static int text_in(struct probe *p, const char *name, char *buf, size_t cap)
{
	char path[512];
	return get_text(p, path_in(p, path, sizeof path, name), buf, cap);
}

static int rename_in(struct probe *p, const char *from, const char *to)
{
	char a[512], b[512];
	return nfs_rename(p->nfs, path_in(p, a, sizeof a, from), path_in(p, b, sizeof b, to));
}

static int text_file(struct probe *p, const char *name, const char *text)
{
	char path[512];
	return put_text(p, path_in(p, path, sizeof path, name), text);
}

static void check_rename(struct probe *p)
{
	struct nfs_stat_64 st, st2;
	char buf[64];
	int rc = text_file(p, "ren-a", "alpha\n");
	EXPECT(p, "rename", rc == 0 && stat_in(p, "ren-a", &st) == 0, "create ren-a: %s", nfs_get_error(p->nfs));
	rc = rename_in(p, "ren-a", "ren-b");
	EXPECT(p, "rename", rc == 0, "rename: %s", nfs_get_error(p->nfs));
	EXPECT(p, "rename", stat_in(p, "ren-a", &st2) == -ENOENT, "the old name still exists");
	EXPECT(p, "rename", stat_in(p, "ren-b", &st2) == 0, "the new name: %s", nfs_get_error(p->nfs));
	EXPECT(p, "rename", st2.nfs_ino == st.nfs_ino, "inode %llu under the new name, %llu before",
	       (unsigned long long)st2.nfs_ino, (unsigned long long)st.nfs_ino);
	rc = text_in(p, "ren-b", buf, sizeof buf);
	EXPECT(p, "rename", rc == 6 && strcmp(buf, "alpha\n") == 0, "content under the new name: '%s'", buf);
	pass(p, "rename", "old name ENOENT, new name same inode and content");

	rc = text_file(p, "ren-c", "charlie\n");
	EXPECT(p, "rename-over-existing", rc == 0 && stat_in(p, "ren-c", &st) == 0, "create ren-c: %s", nfs_get_error(p->nfs));
	rc = text_file(p, "ren-d", "delta\n");
	EXPECT(p, "rename-over-existing", rc == 0, "create ren-d: %s", nfs_get_error(p->nfs));
	rc = rename_in(p, "ren-c", "ren-d");
	EXPECT(p, "rename-over-existing", rc == 0, "rename onto an existing file: %s", nfs_get_error(p->nfs));
	EXPECT(p, "rename-over-existing", stat_in(p, "ren-c", &st2) == -ENOENT, "the old name still exists");
	EXPECT(p, "rename-over-existing", stat_in(p, "ren-d", &st2) == 0 && st2.nfs_ino == st.nfs_ino,
	       "the target has inode %llu, not the renamed file's %llu", (unsigned long long)st2.nfs_ino, (unsigned long long)st.nfs_ino);
	rc = text_in(p, "ren-d", buf, sizeof buf);
	EXPECT(p, "rename-over-existing", rc == 8 && strcmp(buf, "charlie\n") == 0, "target content: '%s'", buf);
	pass(p, "rename-over-existing", "the target replaced: renamed file's inode and content");

	char path[512];
	rc = nfs_mkdir(p->nfs, path_in(p, path, sizeof path, "ren-dir1"));
	EXPECT(p, "rename-dir", rc == 0, "mkdir: %s", nfs_get_error(p->nfs));
	rc = text_file(p, "ren-dir1/inner", "inner\n");
	EXPECT(p, "rename-dir", rc == 0, "create inner: %s", nfs_get_error(p->nfs));
	rc = nfs_mkdir(p->nfs, path_in(p, path, sizeof path, "ren-into"));
	EXPECT(p, "rename-dir", rc == 0, "mkdir: %s", nfs_get_error(p->nfs));
	rc = rename_in(p, "ren-dir1", "ren-into/ren-dir2");
	EXPECT(p, "rename-dir", rc == 0, "rename of a non-empty directory into another: %s", nfs_get_error(p->nfs));
	EXPECT(p, "rename-dir", stat_in(p, "ren-dir1", &st2) == -ENOENT, "the old directory name still exists");
	rc = text_in(p, "ren-into/ren-dir2/inner", buf, sizeof buf);
	EXPECT(p, "rename-dir", rc == 6 && strcmp(buf, "inner\n") == 0, "the moved directory's file: %d '%s'", rc, buf);
	pass(p, "rename-dir", "a non-empty directory moved into another, its file readable there");
}

static void check_hardlink(struct probe *p)
{
	struct nfs_stat_64 a, b;
	char pa[512], pb[512], buf[64];
	int rc = text_file(p, "link-a", "linked\n");
	EXPECT(p, "hardlink", rc == 0, "create: %s", nfs_get_error(p->nfs));
	rc = nfs_link(p->nfs, path_in(p, pa, sizeof pa, "link-a"), path_in(p, pb, sizeof pb, "link-b"));
	EXPECT(p, "hardlink", rc == 0, "link: %s", nfs_get_error(p->nfs));
	EXPECT(p, "hardlink", stat_in(p, "link-a", &a) == 0 && stat_in(p, "link-b", &b) == 0, "stat: %s", nfs_get_error(p->nfs));
	EXPECT(p, "hardlink", a.nfs_ino == b.nfs_ino, "inodes %llu and %llu differ", (unsigned long long)a.nfs_ino,
	       (unsigned long long)b.nfs_ino);
	EXPECT(p, "hardlink", a.nfs_nlink == 2 && b.nfs_nlink == 2, "nlink %llu and %llu, not 2", (unsigned long long)a.nfs_nlink,
	       (unsigned long long)b.nfs_nlink);
	pass(p, "hardlink", "same inode, nlink 2 on both names");

	rc = nfs_unlink(p->nfs, pa);
	EXPECT(p, "hardlink-unlink", rc == 0, "unlink: %s", nfs_get_error(p->nfs));
	EXPECT(p, "hardlink-unlink", stat_in(p, "link-b", &b) == 0 && b.nfs_nlink == 1, "nlink %llu after unlinking the other name",
	       (unsigned long long)b.nfs_nlink);
	rc = text_in(p, "link-b", buf, sizeof buf);
	EXPECT(p, "hardlink-unlink", rc == 7 && strcmp(buf, "linked\n") == 0, "content: '%s'", buf);
	pass(p, "hardlink-unlink", "nlink 1, content kept");
}

static void check_symlink(struct probe *p)
{
	const char *name = "symlink";
	/* Relative, dangling, with spaces and UTF-8: the server must keep the text as given. */
	static const char target[] = "../no such/d\xc3\xa9j\xc3\xa0-vu/target with spaces";
	char path[512], back[PATH_CAP + 1];
	int rc = nfs_symlink(p->nfs, target, path_in(p, path, sizeof path, "sym"));
	EXPECT(p, name, rc == 0, "symlink: %s", nfs_get_error(p->nfs));
	rc = nfs_readlink(p->nfs, path, back, sizeof back);
	EXPECT(p, name, rc == 0 && strcmp(back, target) == 0, "readlink: %d '%s'", rc, rc == 0 ? back : nfs_get_error(p->nfs));
	struct nfs_stat_64 st;
	rc = nfs_lstat64(p->nfs, path, &st);
	EXPECT(p, name, rc == 0 && (st.nfs_mode & 0170000) == 0120000, "lstat: mode %llo", (unsigned long long)st.nfs_mode);
	struct reply r = { 0 };
	int s = nfs3_lookup(p, &p->work, "sym", &r);
	EXPECT(p, name, s == NFS3_OK && r.has_attr && r.attr.type == NF3LNK, "LOOKUP: %s type %d", why(&r), (int)r.attr.type);
	struct fh f = r.fh;
	r.buf = (unsigned char *)back;
	r.buf_cap = sizeof back;
	s = nfs3_readlink(p, &f, &r);
	EXPECT(p, name, s == NFS3_OK && strcmp(back, target) == 0, "READLINK: %s '%s'", why(&r), back);
	pass(p, name, "READLINK gives the exact %zu-byte target; lstat and LOOKUP see a link", strlen(target));
}

static void check_name_max(struct probe *p)
{
	const char *name = "name-max";
	unsigned n = p->name_max == 0 || p->name_max > 255 ? 255 : p->name_max;
	char longest[257];
	memset(longest, 'n', n);
	longest[n] = '\0';
	struct reply r = { 0 };
	struct fh f;
	int st = make_file(p, &p->work, longest, &f, &r);
	EXPECT(p, name, st == NFS3_OK, "CREATE of a %u-byte name: %s", n, why(&r));
	st = nfs3_lookup(p, &p->work, longest, &r);
	EXPECT(p, name, st == NFS3_OK, "LOOKUP of the %u-byte name: %s", n, why(&r));
	if (p->name_max != n) {
		pass(p, name, "a %u-byte name works (PATHCONF name_max %u)", n, p->name_max);
		return;
	}
	longest[n] = 'n';
	longest[n + 1] = '\0';
	st = nfs3_create(p, &p->work, longest, GUARDED, 0644, NULL, &r);
	/* RFC 1813 §3.3.8: a name longer than the server allows is NFS3ERR_NAMETOOLONG. */
	EXPECT(p, name, st == NFS3ERR_NAMETOOLONG, "CREATE of a %u-byte name (name_max %u): %s, not NFS3ERR_NAMETOOLONG", n + 1,
	       n, why(&r));
	pass(p, name, "%u bytes (PATHCONF name_max) work, %u give NFS3ERR_NAMETOOLONG", n, n + 1);
}

void conform_names(struct probe *p)
{
	check_rename(p);
	check_hardlink(p);
	check_symlink(p);
	check_name_max(p);
}
