/*
 * Raw NFSv3 calls through libnfs's RPC layer (rpc_nfs3_*_async on the
 * context nfs_get_rpc_context() gives), for the checks that need a
 * procedure's exact status or fields and for the benchmarks (one op = one
 * RPC). Each reply is copied into a struct reply inside the callback, since
 * libnfs frees it afterwards; every length taken from the server is checked
 * against RFC 1813's limits or the caller's buffer before it is copied.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "probe.h"

void call_init(struct call *c, struct reply *r)
{
	unsigned char *buf = r->buf;
	uint32_t cap = r->buf_cap;
	entry_fn fn = r->on_entry;
	void *ctx = r->entry_ctx;
	memset(c, 0, sizeof *c);
	memset(r, 0, sizeof *r);
	r->buf = buf;
	r->buf_cap = cap;
	r->on_entry = fn;
	r->entry_ctx = ctx;
	r->status = -1;
	snprintf(r->error, sizeof r->error, "no reply");
	c->r = r;
}

const char *status_name(int status)
{
	switch (status) {
	case -1: return "no reply";
	case NFS3_OK: return "NFS3_OK";
	case NFS3ERR_PERM: return "NFS3ERR_PERM";
	case NFS3ERR_NOENT: return "NFS3ERR_NOENT";
	case NFS3ERR_IO: return "NFS3ERR_IO";
	case NFS3ERR_NXIO: return "NFS3ERR_NXIO";
	case NFS3ERR_ACCES: return "NFS3ERR_ACCES";
	case NFS3ERR_EXIST: return "NFS3ERR_EXIST";
	case NFS3ERR_XDEV: return "NFS3ERR_XDEV";
	case NFS3ERR_NODEV: return "NFS3ERR_NODEV";
	case NFS3ERR_NOTDIR: return "NFS3ERR_NOTDIR";
	case NFS3ERR_ISDIR: return "NFS3ERR_ISDIR";
	case NFS3ERR_INVAL: return "NFS3ERR_INVAL";
	case NFS3ERR_FBIG: return "NFS3ERR_FBIG";
	case NFS3ERR_NOSPC: return "NFS3ERR_NOSPC";
	case NFS3ERR_ROFS: return "NFS3ERR_ROFS";
	case NFS3ERR_MLINK: return "NFS3ERR_MLINK";
	case NFS3ERR_NAMETOOLONG: return "NFS3ERR_NAMETOOLONG";
	case NFS3ERR_NOTEMPTY: return "NFS3ERR_NOTEMPTY";
	case NFS3ERR_DQUOT: return "NFS3ERR_DQUOT";
	case NFS3ERR_STALE: return "NFS3ERR_STALE";
	case NFS3ERR_REMOTE: return "NFS3ERR_REMOTE";
	case NFS3ERR_BADHANDLE: return "NFS3ERR_BADHANDLE";
	case NFS3ERR_NOT_SYNC: return "NFS3ERR_NOT_SYNC";
	case NFS3ERR_BAD_COOKIE: return "NFS3ERR_BAD_COOKIE";
	case NFS3ERR_NOTSUPP: return "NFS3ERR_NOTSUPP";
	case NFS3ERR_TOOSMALL: return "NFS3ERR_TOOSMALL";
	case NFS3ERR_SERVERFAULT: return "NFS3ERR_SERVERFAULT";
	case NFS3ERR_BADTYPE: return "NFS3ERR_BADTYPE";
	case NFS3ERR_JUKEBOX: return "NFS3ERR_JUKEBOX";
	default: return "NFS3ERR_(unknown)";
	}
}

/* Replies taken so far, so a pipeline can wait for "any one more". */
static uint64_t replies;
/* A call went unanswered for the whole timeout. */
static int timed_out;

/*
 * Run libnfs's socket until *done (or, without done, until one more reply).
 * Timeouts are libnfs's (nfs_set_timeout): rpc_service() with no events,
 * called at least every 100 ms, expires them. A failed socket marks the
 * probe dead: the calls still queued in libnfs will never complete, and
 * nothing more is sent.
 */
static int pump(struct probe *p, const int *done, uint64_t seen)
{
	while (done != NULL ? !*done : replies == seen) {
		if (p->dead)
			return -1;
		struct pollfd pfd = { .fd = rpc_get_fd(p->rpc), .events = (short)rpc_which_events(p->rpc) };
		int n = poll(&pfd, 1, 100);
		if (n < 0 && errno != EINTR) {
			p->dead = 1;
			return -1;
		}
		if (rpc_service(p->rpc, n > 0 ? pfd.revents : 0) < 0) {
			const char *why = rpc_get_error(p->rpc);
			fprintf(stderr, "nfsprobe: connection failed: %s\n", why != NULL ? why : "closed by the server");
			p->dead = 1;
			return -1;
		}
		/*
		 * A server silent for the whole timeout is treated as gone: the
		 * calls still queued would each wait as long, so nothing more is sent.
		 */
		if (timed_out && !p->dead) {
			fprintf(stderr, "nfsprobe: no reply within %u ms; giving up on the connection\n", p->opt.timeout_ms);
			p->dead = 1;
		}
	}
	return 0;
}

int pump_until(struct probe *p, const int *done)
{
	return pump(p, done, 0);
}

int pump_some(struct probe *p)
{
	return pump(p, NULL, replies);
}

static void dec_null(void *res, struct reply *r)
{
	(void)res;
	r->status = NFS3_OK;
}

static void on_reply(struct rpc_context *rpc, int status, void *data, void *priv)
{
	(void)rpc;
	struct call *c = priv;
	struct reply *r = c->r;
	replies++;
	if (status == RPC_STATUS_SUCCESS && c->decode == dec_null) {
		r->status = NFS3_OK; /* NULL has no result: libnfs passes no data */
	} else if (status == RPC_STATUS_SUCCESS && data != NULL) {
		r->error[0] = '\0';
		c->decode(data, r);
	} else if (status == RPC_STATUS_SUCCESS) {
		snprintf(r->error, sizeof r->error, "a reply without a result");
	} else if (status == RPC_STATUS_ERROR) {
		snprintf(r->error, sizeof r->error, "RPC error: %.150s", data != NULL ? (const char *)data : "?");
	} else if (status == RPC_STATUS_TIMEOUT) {
		snprintf(r->error, sizeof r->error, "no reply in time (timeout)");
		timed_out = 1;
	} else {
		snprintf(r->error, sizeof r->error, "call cancelled");
	}
	c->done = 1;
}

static int sent(struct probe *p, struct call *c, int rc)
{
	if (rc == 0)
		return 0;
	const char *why = rpc_get_error(p->rpc);
	snprintf(c->r->error, sizeof c->r->error, "could not send: %.150s", why != NULL ? why : "?");
	c->done = 1;
	return -1;
}

static int refused(struct probe *p, struct call *c)
{
	if (!p->dead)
		return 0;
	snprintf(c->r->error, sizeof c->r->error, "connection lost");
	c->done = 1;
	return 1;
}

static int finish(struct probe *p, struct call *c, int rc)
{
	if (rc != 0)
		return -1;
	if (pump_until(p, &c->done) != 0) {
		c->r->status = -1;
		snprintf(c->r->error, sizeof c->r->error, "connection lost");
		return -1;
	}
	return c->r->status;
}

/* Our handle as libnfs's argument type (which points into it). */
int fh3(const struct fh *f, nfs_fh3 *out)
{
	out->data.data_len = f->len;
	out->data.data_val = (char *)f->data;
	return 0;
}

sattr3 sattr_none(void)
{
	sattr3 s;
	memset(&s, 0, sizeof s);
	s.atime.set_it = DONT_CHANGE;
	s.mtime.set_it = DONT_CHANGE;
	return s;
}

/* Replies: copy out what the checks read. */

/* A reply that breaks a limit: no usable reply. */
static void bad(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof r->error, fmt, ap);
	va_end(ap);
	r->status = -1;
}

static void take_fh(struct reply *r, const nfs_fh3 *h)
{
	if (h->data.data_len == 0 || h->data.data_len > NFS3_FHSIZE || h->data.data_val == NULL) {
		bad(r, "file handle of %u bytes (RFC 1813: 1 to 64)", h->data.data_len);
		return;
	}
	r->has_fh = 1;
	r->fh.len = h->data.data_len;
	memcpy(r->fh.data, h->data.data_val, h->data.data_len);
}

static void take_attr(int *has, fattr3 *dst, const post_op_attr *a)
{
	*has = a->attributes_follow != 0;
	if (*has)
		*dst = a->post_op_attr_u.attributes;
}

static void take_wcc(struct reply *r, const wcc_data *w)
{
	r->has_before = w->before.attributes_follow != 0;
	if (r->has_before)
		r->before = w->before.pre_op_attr_u.attributes;
	take_attr(&r->has_dir, &r->dir, &w->after);
}

static void dec_getattr(void *res, struct reply *r)
{
	GETATTR3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK) {
		r->has_attr = 1;
		r->attr = x->GETATTR3res_u.resok.obj_attributes;
	}
}

static void dec_setattr(void *res, struct reply *r)
{
	SETATTR3res *x = res;
	r->status = (int)x->status;
	const wcc_data *w = x->status == NFS3_OK ? &x->SETATTR3res_u.resok.obj_wcc : &x->SETATTR3res_u.resfail.obj_wcc;
	r->has_before = w->before.attributes_follow != 0;
	if (r->has_before)
		r->before = w->before.pre_op_attr_u.attributes;
	take_attr(&r->has_attr, &r->attr, &w->after);
}

static void dec_lookup(void *res, struct reply *r)
{
	LOOKUP3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK) {
		take_attr(&r->has_attr, &r->attr, &x->LOOKUP3res_u.resok.obj_attributes);
		take_attr(&r->has_dir, &r->dir, &x->LOOKUP3res_u.resok.dir_attributes);
		take_fh(r, &x->LOOKUP3res_u.resok.object);
	} else {
		take_attr(&r->has_dir, &r->dir, &x->LOOKUP3res_u.resfail.dir_attributes);
	}
}

static void dec_access(void *res, struct reply *r)
{
	ACCESS3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK) {
		r->access = x->ACCESS3res_u.resok.access;
		take_attr(&r->has_attr, &r->attr, &x->ACCESS3res_u.resok.obj_attributes);
	}
}

static void dec_readlink(void *res, struct reply *r)
{
	READLINK3res *x = res;
	r->status = (int)x->status;
	if (x->status != NFS3_OK)
		return;
	take_attr(&r->has_attr, &r->attr, &x->READLINK3res_u.resok.symlink_attributes);
	const char *text = x->READLINK3res_u.resok.data;
	size_t n = text == NULL ? 0 : strnlen(text, PATH_CAP + 1);
	if (n > PATH_CAP || (r->buf != NULL && n + 1 > r->buf_cap)) {
		bad(r, "READLINK text longer than %u bytes", r->buf != NULL && r->buf_cap - 1 < PATH_CAP ? r->buf_cap - 1 : PATH_CAP);
		return;
	}
	r->count = (uint32_t)n;
	if (r->buf != NULL) {
		memcpy(r->buf, text, n);
		r->buf[n] = '\0';
	}
}

static void dec_read(void *res, struct reply *r)
{
	READ3res *x = res;
	r->status = (int)x->status;
	if (x->status != NFS3_OK)
		return;
	const READ3resok *ok = &x->READ3res_u.resok;
	take_attr(&r->has_attr, &r->attr, &ok->file_attributes);
	/* RFC 1813 §3.3.6: count is the number of bytes returned; never more than asked. */
	if (ok->count != ok->data.data_len) {
		r->status = -1;
		snprintf(r->error, sizeof r->error, "READ count %u but %u bytes of data", ok->count, ok->data.data_len);
		return;
	}
	if (ok->count > r->asked) {
		r->status = -1;
		snprintf(r->error, sizeof r->error, "READ returned %u bytes, %u asked", ok->count, r->asked);
		return;
	}
	r->count = ok->count;
	r->eof = ok->eof != 0;
	if (r->buf != NULL && ok->count > 0)
		memcpy(r->buf, ok->data.data_val, ok->count < r->buf_cap ? ok->count : r->buf_cap);
}

static void dec_write(void *res, struct reply *r)
{
	WRITE3res *x = res;
	r->status = (int)x->status;
	if (x->status != NFS3_OK)
		return;
	const WRITE3resok *ok = &x->WRITE3res_u.resok;
	r->count = ok->count;
	r->committed = (int)ok->committed;
	memcpy(r->verf, ok->verf, sizeof r->verf);
	take_attr(&r->has_attr, &r->attr, &ok->file_wcc.after);
}

static void dec_commit(void *res, struct reply *r)
{
	COMMIT3res *x = res;
	r->status = (int)x->status;
	if (x->status != NFS3_OK)
		return;
	memcpy(r->verf, x->COMMIT3res_u.resok.verf, sizeof r->verf);
	take_attr(&r->has_attr, &r->attr, &x->COMMIT3res_u.resok.file_wcc.after);
}

/* CREATE, MKDIR and SYMLINK answer alike: an optional handle, attributes, the directory's wcc. */
static void take_made(struct reply *r, const post_op_fh3 *obj, const post_op_attr *attr, const wcc_data *dir)
{
	take_attr(&r->has_attr, &r->attr, attr);
	take_wcc(r, dir);
	if (obj->handle_follows)
		take_fh(r, &obj->post_op_fh3_u.handle);
}

static void dec_create(void *res, struct reply *r)
{
	CREATE3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK)
		take_made(r, &x->CREATE3res_u.resok.obj, &x->CREATE3res_u.resok.obj_attributes, &x->CREATE3res_u.resok.dir_wcc);
	else
		take_wcc(r, &x->CREATE3res_u.resfail.dir_wcc);
}

static void dec_mkdir(void *res, struct reply *r)
{
	MKDIR3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK)
		take_made(r, &x->MKDIR3res_u.resok.obj, &x->MKDIR3res_u.resok.obj_attributes, &x->MKDIR3res_u.resok.dir_wcc);
	else
		take_wcc(r, &x->MKDIR3res_u.resfail.dir_wcc);
}

static void dec_symlink(void *res, struct reply *r)
{
	SYMLINK3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK)
		take_made(r, &x->SYMLINK3res_u.resok.obj, &x->SYMLINK3res_u.resok.obj_attributes, &x->SYMLINK3res_u.resok.dir_wcc);
	else
		take_wcc(r, &x->SYMLINK3res_u.resfail.dir_wcc);
}

static void dec_remove(void *res, struct reply *r)
{
	REMOVE3res *x = res;
	r->status = (int)x->status;
	take_wcc(r, x->status == NFS3_OK ? &x->REMOVE3res_u.resok.dir_wcc : &x->REMOVE3res_u.resfail.dir_wcc);
}

static void dec_rmdir(void *res, struct reply *r)
{
	RMDIR3res *x = res;
	r->status = (int)x->status;
	take_wcc(r, x->status == NFS3_OK ? &x->RMDIR3res_u.resok.dir_wcc : &x->RMDIR3res_u.resfail.dir_wcc);
}

static void dec_rename(void *res, struct reply *r)
{
	RENAME3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK)
		take_wcc(r, &x->RENAME3res_u.resok.fromdir_wcc);
}

static void dec_link(void *res, struct reply *r)
{
	LINK3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK) {
		take_attr(&r->has_attr, &r->attr, &x->LINK3res_u.resok.file_attributes);
		take_wcc(r, &x->LINK3res_u.resok.linkdir_wcc);
	}
}

/* XDR sizes (RFC 1813 §2.5, §2.6): a string or opaque is a 4-byte length plus data padded to 4. */
static uint64_t xdr_opaque(size_t n)
{
	return 4 + ((n + 3) & ~(size_t)3);
}

#define FATTR3_BYTES 84
#define ENTRIES_CAP 1000000

static int take_name(struct reply *r, const char *name, size_t *len)
{
	*len = name == NULL ? 0 : strnlen(name, NAME_CAP + 1);
	if (name == NULL || *len == 0 || *len > NAME_CAP) {
		bad(r, "directory entry name of %llu bytes", (unsigned long long)*len);
		return -1;
	}
	return 0;
}

static void dec_readdir(void *res, struct reply *r)
{
	READDIR3res *x = res;
	r->status = (int)x->status;
	if (x->status != NFS3_OK)
		return;
	const READDIR3resok *ok = &x->READDIR3res_u.resok;
	take_attr(&r->has_dir, &r->dir, &ok->dir_attributes);
	memcpy(r->cookieverf, ok->cookieverf, sizeof r->cookieverf);
	r->eof = ok->reply.eof != 0;
	/* status, dir_attributes, cookieverf, then "no more entries" and eof */
	r->est_bytes = 4 + 4 + (r->has_dir ? FATTR3_BYTES : 0) + 8 + 4 + 4;
	for (const entry3 *e = ok->reply.entries; e != NULL; e = e->nextentry) {
		struct dirent3 d = { .fileid = e->fileid, .cookie = e->cookie, .name = e->name };
		if (r->entries >= ENTRIES_CAP) {
			bad(r, "more than %d entries in one reply", ENTRIES_CAP);
			return;
		}
		if (take_name(r, e->name, &d.name_len) != 0)
			return;
		r->entries++;
		r->last_cookie = e->cookie;
		r->est_bytes += 4 + 8 + xdr_opaque(d.name_len) + 8;
		if (r->on_entry != NULL)
			r->on_entry(r->entry_ctx, &d);
	}
}

static void dec_readdirplus(void *res, struct reply *r)
{
	READDIRPLUS3res *x = res;
	r->status = (int)x->status;
	if (x->status != NFS3_OK)
		return;
	const READDIRPLUS3resok *ok = &x->READDIRPLUS3res_u.resok;
	take_attr(&r->has_dir, &r->dir, &ok->dir_attributes);
	memcpy(r->cookieverf, ok->cookieverf, sizeof r->cookieverf);
	r->eof = ok->reply.eof != 0;
	r->est_bytes = 4 + 4 + (r->has_dir ? FATTR3_BYTES : 0) + 8 + 4 + 4;
	for (const entryplus3 *e = ok->reply.entries; e != NULL; e = e->nextentry) {
		struct dirent3 d = { .fileid = e->fileid, .cookie = e->cookie, .name = e->name };
		struct fh handle = { 0 };
		if (r->entries >= ENTRIES_CAP) {
			bad(r, "more than %d entries in one reply", ENTRIES_CAP);
			return;
		}
		if (take_name(r, e->name, &d.name_len) != 0)
			return;
		d.has_attr = e->name_attributes.attributes_follow != 0;
		d.attr = d.has_attr ? &e->name_attributes.post_op_attr_u.attributes : NULL;
		if (e->name_handle.handle_follows) {
			const nfs_fh3 *h = &e->name_handle.post_op_fh3_u.handle;
			if (h->data.data_len == 0 || h->data.data_len > NFS3_FHSIZE || h->data.data_val == NULL) {
				bad(r, "entry handle of %u bytes (RFC 1813: 1 to 64)", h->data.data_len);
				return;
			}
			handle.len = h->data.data_len;
			memcpy(handle.data, h->data.data_val, handle.len);
			d.has_fh = 1;
			d.fh = &handle;
		}
		r->entries++;
		r->last_cookie = e->cookie;
		r->est_bytes += 4 + 8 + xdr_opaque(d.name_len) + 8 + 4 + (d.has_attr ? FATTR3_BYTES : 0) + 4 +
			(d.has_fh ? xdr_opaque(handle.len) : 0);
		if (r->on_entry != NULL)
			r->on_entry(r->entry_ctx, &d);
	}
}

static void dec_fsstat(void *res, struct reply *r)
{
	FSSTAT3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK)
		r->fsstat = x->FSSTAT3res_u.resok;
}

static void dec_fsinfo(void *res, struct reply *r)
{
	FSINFO3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK)
		r->fsinfo = x->FSINFO3res_u.resok;
}

static void dec_pathconf(void *res, struct reply *r)
{
	PATHCONF3res *x = res;
	r->status = (int)x->status;
	if (x->status == NFS3_OK)
		r->pathconf = x->PATHCONF3res_u.resok;
}

/* Queued calls (the reply arrives in c once c->done). */

int q_null(struct probe *p, struct call *c)
{
	if (refused(p, c))
		return -1;
	c->decode = dec_null;
	return sent(p, c, rpc_nfs3_null_async(p->rpc, on_reply, c));
}

int q_getattr(struct probe *p, struct call *c, const struct fh *f)
{
	if (refused(p, c))
		return -1;
	GETATTR3args a;
	fh3(f, &a.object);
	c->decode = dec_getattr;
	return sent(p, c, rpc_nfs3_getattr_async(p->rpc, on_reply, &a, c));
}

int q_lookup(struct probe *p, struct call *c, const struct fh *dir, const char *name)
{
	if (refused(p, c))
		return -1;
	LOOKUP3args a;
	fh3(dir, &a.what.dir);
	a.what.name = (char *)name;
	c->decode = dec_lookup;
	return sent(p, c, rpc_nfs3_lookup_async(p->rpc, on_reply, &a, c));
}

static int q_create_with(struct probe *p, struct call *c, const struct fh *dir, const char *name, int how,
			 const sattr3 *s, const unsigned char *verf)
{
	if (refused(p, c))
		return -1;
	CREATE3args a;
	memset(&a, 0, sizeof a);
	fh3(dir, &a.where.dir);
	a.where.name = (char *)name;
	a.how.mode = (createmode3)how;
	if (how == EXCLUSIVE)
		memcpy(a.how.createhow3_u.verf, verf, NFS3_CREATEVERFSIZE);
	else
		a.how.createhow3_u.obj_attributes = *s;
	c->decode = dec_create;
	return sent(p, c, rpc_nfs3_create_async(p->rpc, on_reply, &a, c));
}

int q_create(struct probe *p, struct call *c, const struct fh *dir, const char *name, int how, uint32_t mode,
	     const unsigned char *verf)
{
	sattr3 s = sattr_none();
	s.mode.set_it = 1;
	s.mode.set_mode3_u.mode = mode;
	return q_create_with(p, c, dir, name, how, &s, verf);
}

int q_remove(struct probe *p, struct call *c, const struct fh *dir, const char *name)
{
	if (refused(p, c))
		return -1;
	REMOVE3args a;
	fh3(dir, &a.object.dir);
	a.object.name = (char *)name;
	c->decode = dec_remove;
	return sent(p, c, rpc_nfs3_remove_async(p->rpc, on_reply, &a, c));
}

int q_read(struct probe *p, struct call *c, const struct fh *f, uint64_t off, uint32_t count)
{
	if (refused(p, c))
		return -1;
	READ3args a;
	fh3(f, &a.file);
	a.offset = off;
	a.count = count;
	c->r->asked = count;
	c->decode = dec_read;
	return sent(p, c, rpc_nfs3_read_async(p->rpc, on_reply, &a, c));
}

int q_write(struct probe *p, struct call *c, const struct fh *f, uint64_t off, const void *data, uint32_t count, int stable)
{
	if (refused(p, c))
		return -1;
	WRITE3args a;
	fh3(f, &a.file);
	a.offset = off;
	a.count = count;
	a.stable = (stable_how)stable;
	a.data.data_len = count;
	a.data.data_val = (char *)data;
	c->decode = dec_write;
	return sent(p, c, rpc_nfs3_write_async(p->rpc, on_reply, &a, c));
}

int q_readdirplus(struct probe *p, struct call *c, const struct fh *dir, uint64_t cookie, const unsigned char *verf,
		  uint32_t dircount, uint32_t maxcount)
{
	if (refused(p, c))
		return -1;
	READDIRPLUS3args a;
	fh3(dir, &a.dir);
	a.cookie = cookie;
	memcpy(a.cookieverf, verf, NFS3_COOKIEVERFSIZE);
	a.dircount = dircount;
	a.maxcount = maxcount;
	c->decode = dec_readdirplus;
	return sent(p, c, rpc_nfs3_readdirplus_async(p->rpc, on_reply, &a, c));
}

/* Synchronous calls: the status, or -1 with r->error. */

#define SYNC(r, queue_call)                                  \
	do {                                                 \
		struct call c_;                              \
		call_init(&c_, (r));                         \
		struct call *c = &c_;                        \
		return finish(p, c, (queue_call));           \
	} while (0)

int nfs3_null(struct probe *p, struct reply *r) { SYNC(r, q_null(p, c)); }
int nfs3_getattr(struct probe *p, const struct fh *f, struct reply *r) { SYNC(r, q_getattr(p, c, f)); }
int nfs3_lookup(struct probe *p, const struct fh *dir, const char *name, struct reply *r) { SYNC(r, q_lookup(p, c, dir, name)); }
int nfs3_remove(struct probe *p, const struct fh *dir, const char *name, struct reply *r) { SYNC(r, q_remove(p, c, dir, name)); }

int nfs3_read(struct probe *p, const struct fh *f, uint64_t off, uint32_t count, struct reply *r)
{
	SYNC(r, q_read(p, c, f, off, count));
}

int nfs3_write(struct probe *p, const struct fh *f, uint64_t off, const void *data, uint32_t count, int stable, struct reply *r)
{
	SYNC(r, q_write(p, c, f, off, data, count, stable));
}

int nfs3_create(struct probe *p, const struct fh *dir, const char *name, int how, uint32_t mode, const unsigned char *verf,
		struct reply *r)
{
	SYNC(r, q_create(p, c, dir, name, how, mode, verf));
}

int nfs3_create_sized(struct probe *p, const struct fh *dir, const char *name, int how, uint64_t size, struct reply *r)
{
	sattr3 s = sattr_none();
	s.size.set_it = 1;
	s.size.set_size3_u.size = size;
	SYNC(r, q_create_with(p, c, dir, name, how, &s, NULL));
}

int nfs3_readdirplus(struct probe *p, const struct fh *dir, uint64_t cookie, const unsigned char *verf, uint32_t dircount,
		     uint32_t maxcount, struct reply *r)
{
	SYNC(r, q_readdirplus(p, c, dir, cookie, verf, dircount, maxcount));
}

static int q_setattr(struct probe *p, struct call *c, const struct fh *f, const sattr3 *s, const nfstime3 *guard)
{
	if (refused(p, c))
		return -1;
	SETATTR3args a;
	memset(&a, 0, sizeof a);
	fh3(f, &a.object);
	a.new_attributes = *s;
	a.guard.check = guard != NULL;
	if (guard != NULL)
		a.guard.sattrguard3_u.obj_ctime = *guard;
	c->decode = dec_setattr;
	return sent(p, c, rpc_nfs3_setattr_async(p->rpc, on_reply, &a, c));
}

int nfs3_setattr(struct probe *p, const struct fh *f, const sattr3 *s, const nfstime3 *guard, struct reply *r)
{
	SYNC(r, q_setattr(p, c, f, s, guard));
}

static int q_access(struct probe *p, struct call *c, const struct fh *f, uint32_t bits)
{
	if (refused(p, c))
		return -1;
	ACCESS3args a;
	fh3(f, &a.object);
	a.access = bits;
	c->decode = dec_access;
	return sent(p, c, rpc_nfs3_access_async(p->rpc, on_reply, &a, c));
}

int nfs3_access(struct probe *p, const struct fh *f, uint32_t bits, struct reply *r) { SYNC(r, q_access(p, c, f, bits)); }

static int q_readlink(struct probe *p, struct call *c, const struct fh *f)
{
	if (refused(p, c))
		return -1;
	READLINK3args a;
	fh3(f, &a.symlink);
	c->decode = dec_readlink;
	return sent(p, c, rpc_nfs3_readlink_async(p->rpc, on_reply, &a, c));
}

int nfs3_readlink(struct probe *p, const struct fh *f, struct reply *r) { SYNC(r, q_readlink(p, c, f)); }

static int q_mkdir(struct probe *p, struct call *c, const struct fh *dir, const char *name, uint32_t mode)
{
	if (refused(p, c))
		return -1;
	MKDIR3args a;
	fh3(dir, &a.where.dir);
	a.where.name = (char *)name;
	a.attributes = sattr_none();
	a.attributes.mode.set_it = 1;
	a.attributes.mode.set_mode3_u.mode = mode;
	c->decode = dec_mkdir;
	return sent(p, c, rpc_nfs3_mkdir_async(p->rpc, on_reply, &a, c));
}

int nfs3_mkdir(struct probe *p, const struct fh *dir, const char *name, uint32_t mode, struct reply *r)
{
	SYNC(r, q_mkdir(p, c, dir, name, mode));
}

static int q_symlink(struct probe *p, struct call *c, const struct fh *dir, const char *name, const char *target)
{
	if (refused(p, c))
		return -1;
	SYMLINK3args a;
	fh3(dir, &a.where.dir);
	a.where.name = (char *)name;
	a.symlink.symlink_attributes = sattr_none();
	a.symlink.symlink_data = (char *)target;
	c->decode = dec_symlink;
	return sent(p, c, rpc_nfs3_symlink_async(p->rpc, on_reply, &a, c));
}

int nfs3_symlink(struct probe *p, const struct fh *dir, const char *name, const char *target, struct reply *r)
{
	SYNC(r, q_symlink(p, c, dir, name, target));
}

static int q_rmdir(struct probe *p, struct call *c, const struct fh *dir, const char *name)
{
	if (refused(p, c))
		return -1;
	RMDIR3args a;
	fh3(dir, &a.object.dir);
	a.object.name = (char *)name;
	c->decode = dec_rmdir;
	return sent(p, c, rpc_nfs3_rmdir_async(p->rpc, on_reply, &a, c));
}

int nfs3_rmdir(struct probe *p, const struct fh *dir, const char *name, struct reply *r) { SYNC(r, q_rmdir(p, c, dir, name)); }

static int q_rename(struct probe *p, struct call *c, const struct fh *from, const char *fname, const struct fh *to,
		    const char *tname)
{
	if (refused(p, c))
		return -1;
	RENAME3args a;
	fh3(from, &a.from.dir);
	a.from.name = (char *)fname;
	fh3(to, &a.to.dir);
	a.to.name = (char *)tname;
	c->decode = dec_rename;
	return sent(p, c, rpc_nfs3_rename_async(p->rpc, on_reply, &a, c));
}

int nfs3_rename(struct probe *p, const struct fh *from, const char *fname, const struct fh *to, const char *tname,
		struct reply *r)
{
	SYNC(r, q_rename(p, c, from, fname, to, tname));
}

static int q_link(struct probe *p, struct call *c, const struct fh *f, const struct fh *dir, const char *name)
{
	if (refused(p, c))
		return -1;
	LINK3args a;
	fh3(f, &a.file);
	fh3(dir, &a.link.dir);
	a.link.name = (char *)name;
	c->decode = dec_link;
	return sent(p, c, rpc_nfs3_link_async(p->rpc, on_reply, &a, c));
}

int nfs3_link(struct probe *p, const struct fh *f, const struct fh *dir, const char *name, struct reply *r)
{
	SYNC(r, q_link(p, c, f, dir, name));
}

static int q_readdir(struct probe *p, struct call *c, const struct fh *dir, uint64_t cookie, const unsigned char *verf,
		     uint32_t count)
{
	if (refused(p, c))
		return -1;
	READDIR3args a;
	fh3(dir, &a.dir);
	a.cookie = cookie;
	memcpy(a.cookieverf, verf, NFS3_COOKIEVERFSIZE);
	a.count = count;
	c->decode = dec_readdir;
	return sent(p, c, rpc_nfs3_readdir_async(p->rpc, on_reply, &a, c));
}

int nfs3_readdir(struct probe *p, const struct fh *dir, uint64_t cookie, const unsigned char *verf, uint32_t count,
		 struct reply *r)
{
	SYNC(r, q_readdir(p, c, dir, cookie, verf, count));
}

static int q_fsstat(struct probe *p, struct call *c, const struct fh *f)
{
	if (refused(p, c))
		return -1;
	FSSTAT3args a;
	fh3(f, &a.fsroot);
	c->decode = dec_fsstat;
	return sent(p, c, rpc_nfs3_fsstat_async(p->rpc, on_reply, &a, c));
}

int nfs3_fsstat(struct probe *p, const struct fh *f, struct reply *r) { SYNC(r, q_fsstat(p, c, f)); }

static int q_fsinfo(struct probe *p, struct call *c, const struct fh *f)
{
	if (refused(p, c))
		return -1;
	FSINFO3args a;
	fh3(f, &a.fsroot);
	c->decode = dec_fsinfo;
	return sent(p, c, rpc_nfs3_fsinfo_async(p->rpc, on_reply, &a, c));
}

int nfs3_fsinfo(struct probe *p, const struct fh *f, struct reply *r) { SYNC(r, q_fsinfo(p, c, f)); }

static int q_pathconf(struct probe *p, struct call *c, const struct fh *f)
{
	if (refused(p, c))
		return -1;
	PATHCONF3args a;
	fh3(f, &a.object);
	c->decode = dec_pathconf;
	return sent(p, c, rpc_nfs3_pathconf_async(p->rpc, on_reply, &a, c));
}

int nfs3_pathconf(struct probe *p, const struct fh *f, struct reply *r) { SYNC(r, q_pathconf(p, c, f)); }

static int q_commit(struct probe *p, struct call *c, const struct fh *f)
{
	if (refused(p, c))
		return -1;
	COMMIT3args a;
	fh3(f, &a.file);
	a.offset = 0;
	a.count = 0; /* RFC 1813 §3.3.21: 0 means from offset to the end of the file */
	c->decode = dec_commit;
	return sent(p, c, rpc_nfs3_commit_async(p->rpc, on_reply, &a, c));
}

int nfs3_commit(struct probe *p, const struct fh *f, struct reply *r) { SYNC(r, q_commit(p, c, f)); }
