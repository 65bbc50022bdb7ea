/*
 * Clocks, latency percentiles, the data pattern, JSON lines, and the one
 * place that looks inside a libnfs file handle.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "probe.h"

double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void lat_add(struct lat *l, double us)
{
	if (l->n == l->cap) {
		size_t cap = l->cap == 0 ? 4096 : l->cap * 2;
		double *bigger = realloc(l->us, cap * sizeof *bigger);
		if (bigger == NULL)
			return; /* keep what fits: percentiles of a sample */
		l->us = bigger;
		l->cap = cap;
	}
	l->us[l->n++] = us;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y ? 1 : 0;
}

/* Nearest-rank percentile, q in 0..1; 0 when nothing was recorded. Sorts in place. */
double lat_pct(struct lat *l, double q)
{
	if (l->n == 0)
		return 0;
	qsort(l->us, l->n, sizeof *l->us, cmp_double);
	size_t rank = (size_t)(q * (double)l->n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > l->n)
		rank = l->n;
	return l->us[rank - 1];
}

void lat_free(struct lat *l)
{
	free(l->us);
	l->us = NULL;
	l->n = l->cap = 0;
}

/*
 * The data every mode writes: a fixed pseudo-random sequence repeating with
 * a prime period, so no block size divides it and a block that lands at the
 * wrong offset does not match. The table holds one period plus XFER_CAP
 * bytes, so any transfer starting anywhere is one contiguous slice.
 */
#define PATTERN_PERIOD 999983u

static unsigned char *pattern;

uint64_t rng_next(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int pattern_init(void)
{
	if (pattern != NULL)
		return 0;
	pattern = malloc((size_t)PATTERN_PERIOD + XFER_CAP);
	if (pattern == NULL)
		return -1;
	uint64_t s = 0x6e667370726f6265ull; /* "nfsprobe" */
	for (size_t i = 0; i < PATTERN_PERIOD; i += 8) {
		uint64_t v = rng_next(&s);
		for (size_t b = 0; b < 8 && i + b < PATTERN_PERIOD; b++)
			pattern[i + b] = (unsigned char)(v >> (8 * b));
	}
	for (size_t i = 0; i < XFER_CAP; i++)
		pattern[PATTERN_PERIOD + i] = pattern[i % PATTERN_PERIOD];
	return 0;
}

const unsigned char *pattern_at(uint64_t off, size_t len)
{
	if (len > XFER_CAP)
		abort(); /* a caller bug: every length is capped before */
	return pattern + off % PATTERN_PERIOD;
}

/* Index of the first byte of buf that differs from the pattern at off, or len. */
size_t pattern_diff(uint64_t off, const unsigned char *buf, size_t len)
{
	size_t i = 0;
	while (i < len) {
		size_t n = len - i < XFER_CAP ? len - i : XFER_CAP;
		const unsigned char *want = pattern_at(off + i, n);
		if (memcmp(want, buf + i, n) != 0) {
			for (size_t j = 0; j < n; j++)
				if (want[j] != buf[i + j])
					return i + j;
		}
		i += n;
	}
	return len;
}

/*
 * libnfs 4.0 hands out a file's handle only as `struct nfs_fh *` from
 * nfs_get_fh(), a type its public headers leave incomplete. Its layout in
 * libnfs 4.0 is {int len; char *val;}; the length is checked against
 * RFC 1813's 64-byte limit before anything is copied, so a libnfs with
 * another layout gives an empty handle (and failing checks), not a crash.
 */
struct libnfs_fh_layout {
	int len;
	char *val;
};

void fh_of(struct fh *dst, struct nfsfh *h)
{
	const struct libnfs_fh_layout *raw = (const void *)nfs_get_fh(h);
	dst->len = 0;
	if (raw == NULL || raw->len <= 0 || raw->len > NFS3_FHSIZE || raw->val == NULL)
		return;
	dst->len = (uint32_t)raw->len;
	memcpy(dst->data, raw->val, dst->len);
}

/* JSON lines: one flat object per benchmark phase. */
void json_begin(struct json *j)
{
	j->len = 0;
	j->buf[j->len++] = '{';
	j->buf[j->len] = '\0';
}

static void json_raw(struct json *j, const char *s)
{
	size_t n = strlen(s);
	if (j->len + n + 2 >= sizeof j->buf)
		return; /* the object is small; a field that would not fit is dropped */
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void json_key(struct json *j, const char *key)
{
	char tmp[80];
	snprintf(tmp, sizeof tmp, "%s\"%s\":", j->len > 1 ? "," : "", key);
	json_raw(j, tmp);
}

void json_str(struct json *j, const char *key, const char *val)
{
	char tmp[600];
	size_t o = 0;
	tmp[o++] = '"';
	for (const unsigned char *s = (const unsigned char *)val; *s != '\0' && o + 8 < sizeof tmp; s++) {
		if (*s == '"' || *s == '\\') {
			tmp[o++] = '\\';
			tmp[o++] = (char)*s;
		} else if (*s < 0x20) {
			o += (size_t)snprintf(tmp + o, sizeof tmp - o, "\\u%04x", *s);
		} else {
			tmp[o++] = (char)*s;
		}
	}
	tmp[o++] = '"';
	tmp[o] = '\0';
	json_key(j, key);
	json_raw(j, tmp);
}

void json_num(struct json *j, const char *key, double val)
{
	char tmp[64];
	snprintf(tmp, sizeof tmp, "%.3f", val);
	json_key(j, key);
	json_raw(j, tmp);
}

void json_u64(struct json *j, const char *key, uint64_t val)
{
	char tmp[32];
	snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)val);
	json_key(j, key);
	json_raw(j, tmp);
}

void json_print(struct json *j)
{
	/* json_raw always leaves room for this brace. */
	j->buf[j->len++] = '}';
	j->buf[j->len] = '\0';
	puts(j->buf);
	fflush(stdout);
}
