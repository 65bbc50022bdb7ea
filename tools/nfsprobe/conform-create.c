/*
 * Checks of CREATE's three modes (RFC 1813 §3.3.8): GUARDED and EXCLUSIVE
 * refuse an existing name, an EXCLUSIVE retransmission with the same
 * verifier succeeds, and UNCHECKED applies its attributes to an existing file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include "check.h"

static const unsigned char VERF_A[NFS3_CREATEVERFSIZE] = { 't', 's', 'n', 'f', 's', 0x01, 0x02, 0x03 };
static const unsigned char VERF_B[NFS3_CREATEVERFSIZE] = { 't', 's', 'n', 'f', 's', 0x04, 0x05, 0x06 };

static void check_exclusive_eexist(struct probe *p)
{
	const char *name = "create-exclusive-eexist";
	struct reply r = { 0 };
	struct fh f;
	int st = make_file(p, &p->work, "excl-existing", &f, &r);
	EXPECT(p, name, st == NFS3_OK, "CREATE GUARDED: %s", why(&r));
	st = nfs3_create(p, &p->work, "excl-existing", EXCLUSIVE, 0, VERF_A, &r);
	EXPECT(p, name, st == NFS3ERR_EXIST, "CREATE EXCLUSIVE of an existing name: %s, not NFS3ERR_EXIST", why(&r));
	st = nfs3_create(p, &p->work, "excl-existing", GUARDED, 0644, NULL, &r);
	EXPECT(p, name, st == NFS3ERR_EXIST, "CREATE GUARDED of an existing name: %s, not NFS3ERR_EXIST", why(&r));
	char path[512];
	struct nfsfh *h;
	int rc = nfs_create(p->nfs, path_in(p, path, sizeof path, "excl-existing"), O_RDWR | O_EXCL, 0644, &h);
	if (rc == 0)
		nfs_close(p->nfs, h);
	EXPECT(p, name, rc == -EEXIST, "open(O_CREAT|O_EXCL) of an existing name: %d, not -EEXIST", rc);
	pass(p, name, "EXCLUSIVE and GUARDED: NFS3ERR_EXIST; O_EXCL: -EEXIST");
}

static void check_exclusive_replay(struct probe *p)
{
	const char *name = "create-exclusive-replay";
	struct reply r = { 0 };
	int st = nfs3_create(p, &p->work, "excl-new", EXCLUSIVE, 0, VERF_A, &r);
	EXPECT(p, name, st == NFS3_OK, "CREATE EXCLUSIVE: %s", why(&r));
	if (!r.has_fh)
		st = nfs3_lookup(p, &p->work, "excl-new", &r);
	EXPECT(p, name, st == NFS3_OK, "LOOKUP: %s", why(&r));
	struct fh f = r.fh;
	st = nfs3_getattr(p, &f, &r);
	EXPECT(p, name, st == NFS3_OK, "GETATTR: %s", why(&r));
	uint64_t fileid = r.attr.fileid;
	/* A retransmission: the same verifier finds the file it made and succeeds. */
	st = nfs3_create(p, &p->work, "excl-new", EXCLUSIVE, 0, VERF_A, &r);
	EXPECT(p, name, st == NFS3_OK, "CREATE EXCLUSIVE again with the same verifier: %s, not NFS3_OK", why(&r));
	if (!r.has_attr || !r.has_fh)
		st = nfs3_lookup(p, &p->work, "excl-new", &r);
	EXPECT(p, name, st == NFS3_OK && r.has_attr && r.attr.fileid == fileid, "the replay answered fileid %llu, not %llu",
	       (unsigned long long)r.attr.fileid, (unsigned long long)fileid);
	st = nfs3_create(p, &p->work, "excl-new", EXCLUSIVE, 0, VERF_B, &r);
	EXPECT(p, name, st == NFS3ERR_EXIST, "CREATE EXCLUSIVE with another verifier: %s, not NFS3ERR_EXIST", why(&r));
	/* The client sets the attributes afterwards (the verifier may live in the times). */
	sattr3 set = sattr_none();
	set.mode.set_it = 1;
	set.mode.set_mode3_u.mode = 0640;
	set.mtime.set_it = SET_TO_SERVER_TIME;
	set.atime.set_it = SET_TO_SERVER_TIME;
	st = nfs3_setattr(p, &f, &set, NULL, &r);
	EXPECT(p, name, st == NFS3_OK, "SETATTR after the exclusive create: %s", why(&r));
	st = nfs3_getattr(p, &f, &r);
	EXPECT(p, name, st == NFS3_OK && (r.attr.mode & 07777) == 0640, "mode %o after SETATTR 0640", r.attr.mode & 07777);
	pass(p, name, "same verifier: NFS3_OK, same fileid; other verifier: NFS3ERR_EXIST; SETATTR afterwards works");
}

static void check_unchecked_existing(struct probe *p)
{
	const char *name = "create-unchecked-existing";
	char path[512];
	int rc = put_pattern(p, path_in(p, path, sizeof path, "unchecked"), 100);
	EXPECT(p, name, rc == 0, "write: %d %s", rc, nfs_get_error(p->nfs));
	struct reply r = { 0 };
	int st = nfs3_lookup(p, &p->work, "unchecked", &r);
	EXPECT(p, name, st == NFS3_OK && r.has_attr, "LOOKUP: %s", why(&r));
	uint64_t fileid = r.attr.fileid;
	st = nfs3_create_sized(p, &p->work, "unchecked", UNCHECKED, 0, &r);
	EXPECT(p, name, st == NFS3_OK, "CREATE UNCHECKED of an existing name: %s", why(&r));
	st = nfs3_lookup(p, &p->work, "unchecked", &r);
	EXPECT(p, name, st == NFS3_OK && r.has_attr, "LOOKUP: %s", why(&r));
	EXPECT(p, name, r.attr.fileid == fileid && r.attr.size == 0, "fileid %llu size %llu, not the same file (%llu) emptied",
	       (unsigned long long)r.attr.fileid, (unsigned long long)r.attr.size, (unsigned long long)fileid);
	pass(p, name, "the existing file kept, its size set to 0 as asked");
}

void conform_create(struct probe *p)
{
	check_exclusive_eexist(p);
	check_exclusive_replay(p);
	check_unchecked_existing(p);
}
