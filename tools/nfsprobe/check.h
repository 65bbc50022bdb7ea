/*
 * Helpers of the conformance checks. A check is a function that ends in
 * pass() or, at its first unmet expectation, fail() and return.
 */
#ifndef NFSPROBE_CHECK_H
#define NFSPROBE_CHECK_H

#include "probe.h"

#define EXPECT(p, name, cond, ...)                   \
	do {                                         \
		if (!(cond)) {                       \
			fail((p), (name), __VA_ARGS__); \
			return;                      \
		}                                    \
	} while (0)

/* Why a raw call did not give NFS3_OK. */
static inline const char *why(const struct reply *r)
{
	return r->status == -1 ? r->error : status_name(r->status);
}

/* t1 later than t0 (RFC 1813 nfstime3). */
static inline int time_after(const nfstime3 *t1, const nfstime3 *t0)
{
	return t1->seconds > t0->seconds || (t1->seconds == t0->seconds && t1->nseconds > t0->nseconds);
}

int make_file(struct probe *p, const struct fh *dir, const char *name, struct fh *out, struct reply *r);
int make_dir(struct probe *p, const struct fh *dir, const char *name, struct fh *out, struct reply *r);
int put_pattern(struct probe *p, const char *path, uint64_t size);
int put_text(struct probe *p, const char *path, const char *text);
int get_text(struct probe *p, const char *path, char *buf, size_t cap);

#endif
