/*
 * nfsprobe nlm URL PATH OP...: a script of NLM and NSM calls on one file,
 * one line per op with the reply's status by name, so a test can assert
 * exact statuses. An op is one word, OP[,FIELD...]; see README.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "probe.h"

/* The file's handle: opened, or created (0644) when missing; its path from the export's root into full. */
int open_file(struct probe *p, const char *path, struct fh *out, char *full, size_t full_cap, char *err, size_t cap)
{
	if ((size_t)snprintf(full, full_cap, "%s%s", path[0] == '/' ? "" : "/", path) >= full_cap) {
		snprintf(err, cap, "path too long");
		return -1;
	}
	struct nfsfh *h;
	int rc = nfs_open(p->nfs, full, O_RDWR, &h);
	if (rc == -ENOENT)
		rc = nfs_creat(p->nfs, full, 0644, &h);
	if (rc != 0) {
		snprintf(err, cap, "open %s: %.150s", full, nfs_get_error(p->nfs));
		return -1;
	}
	fh_of(out, h);
	nfs_close(p->nfs, h);
	if (out->len == 0) {
		snprintf(err, cap, "no usable handle for %s from libnfs", full);
		return -1;
	}
	return 0;
}

struct script {
	struct probe *p;
	struct fh fh;
	char path[1100];
	struct rpc_link nlm, nsm;
	int nlm_open, nsm_open;
	unsigned errors;
};

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static int parse_hex(const char *s, unsigned char *out, size_t cap, size_t *len)
{
	size_t n = strlen(s);
	if (n % 2 != 0 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	*len = n / 2;
	return 0;
}

/* The op's fields into the lock and NSM arguments; -1 and a message for one it does not know. */
static int parse_fields(struct script *sc, char *fields, struct nlm_lock_spec *l, struct nsm_spec *m, char *err, size_t cap)
{
	memset(l, 0, sizeof *l);
	memset(m, 0, sizeof *m);
	l->caller = sc->p->opt.caller;
	l->oh = "nfsprobe";
	l->svid = 1;
	m->mon_name = sc->p->opt.caller;
	m->my_name = sc->p->opt.caller;
	m->my_prog = NLM_PROGRAM;
	m->my_vers = NLM_V4;
	m->my_proc = 16; /* NLMPROC_NSM_NOTIFY, the procedure Linux's lockd gives statd */
	for (char *f = fields; f != NULL && *f != '\0';) {
		char *next = strchr(f, ',');
		if (next != NULL)
			*next++ = '\0';
		char *v = strchr(f, '=');
		if (v != NULL)
			*v++ = '\0';
		uint64_t n = 0;
		int bad = 0, num = v != NULL && parse_u64(v, &n) == 0;
		if (strcmp(f, "x") == 0 && v == NULL)
			l->exclusive = 1;
		else if (strcmp(f, "block") == 0 && v == NULL)
			l->block = 1;
		else if (strcmp(f, "reclaim") == 0 && v == NULL)
			l->reclaim = 1;
		else if (strcmp(f, "off") == 0 && num)
			l->l_offset = n;
		else if (strcmp(f, "len") == 0 && num)
			l->l_len = n;
		else if (strcmp(f, "svid") == 0 && num && n <= UINT32_MAX)
			l->svid = (uint32_t)n;
		else if (strcmp(f, "state") == 0 && num && n <= INT32_MAX)
			l->state = m->state = (int)n;
		else if (strcmp(f, "oh") == 0 && v != NULL && strlen(v) <= NLM_OH_CAP)
			l->oh = v;
		else if (strcmp(f, "caller") == 0 && v != NULL && strlen(v) <= NAME_CAP)
			l->caller = v;
		else if (strcmp(f, "name") == 0 && v != NULL && strlen(v) <= NAME_CAP)
			m->mon_name = v;
		else if (strcmp(f, "my") == 0 && v != NULL && strlen(v) <= NAME_CAP)
			m->my_name = v;
		else if (strcmp(f, "prog") == 0 && num && n <= INT32_MAX)
			m->my_prog = (int)n;
		else if (strcmp(f, "vers") == 0 && num && n <= INT32_MAX)
			m->my_vers = (int)n;
		else if (strcmp(f, "proc") == 0 && num && n <= INT32_MAX)
			m->my_proc = (int)n;
		else if (strcmp(f, "priv") == 0 && v != NULL) {
			size_t len;
			bad = parse_hex(v, m->priv, sizeof m->priv, &len);
		} else
			bad = 1;
		if (bad) {
			snprintf(err, cap, "bad field '%s%s%s'", f, v != NULL ? "=" : "", v != NULL ? v : "");
			return -1;
		}
		f = next;
	}
	return 0;
}

static int ensure_link(struct script *sc, int nsm)
{
	struct rpc_link *l = nsm ? &sc->nsm : &sc->nlm;
	int *opened = nsm ? &sc->nsm_open : &sc->nlm_open;
	if (*opened)
		return l->dead ? -1 : 0;
	*opened = 1;
	const struct options *o = &sc->p->opt;
	if (link_open(l, sc->p->server, nsm ? NSM_PROGRAM : NLM_PROGRAM, nsm ? NSM_V1 : NLM_V4, nsm ? o->nsm_port : o->nlm_port,
		      o->pmap_port, o->timeout_ms) != 0) {
		l->dead = 1;
		return -1;
	}
	return 0;
}

/* Printable text of an owner handle or name: bytes outside ' '..'~' (and '\') as \xNN. */
static void print_text(const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
		if (*c < 0x20 || *c > 0x7e || *c == '\\')
			printf("\\x%02x", *c);
		else
			putchar(*c);
	}
}

static const char *nlm_op_name(int kind)
{
	static const char *const names[] = { "NULL", "TEST", "LOCK", "CANCEL", "UNLOCK", "SM_NULL", "SM_STAT", "SM_MON",
					     "SM_UNMON", "SM_UNMON_ALL", "SM_SIMU_CRASH", "SM_NOTIFY" };
	return names[kind];
}

static void report(struct script *sc, const struct nlm_reply *r, const struct rpc_link *l)
{
	const char *name = nlm_op_name(r->kind);
	if (r->status == -1 || !r->done) {
		sc->errors++;
		printf("%s error: %s%s%s\n", name, r->error, l->error[0] != '\0' ? "; " : "", l->error);
		return;
	}
	printf("%s", name);
	if (r->kind == NLM_NULL_CALL || r->kind == SM_NULL_CALL || r->kind == SM_SIMU_CRASH_CALL || r->kind == SM_NOTIFY_CALL)
		printf(" ok");
	else if (r->kind == SM_STAT_CALL || r->kind == SM_MON_CALL)
		printf(" %s state=%d", r->status == 0 ? "STAT_SUCC" : r->status == 1 ? "STAT_FAIL" : "STAT_(unknown)", r->sm_state);
	else if (r->kind == SM_UNMON_CALL || r->kind == SM_UNMON_ALL_CALL)
		printf(" state=%d", r->sm_state);
	else
		printf(" %s", nlm_stat_name(r->status));
	if (r->has_holder) {
		printf(" excl=%d svid=%u oh=", r->holder.exclusive, r->holder.svid);
		print_text(r->holder.oh);
		printf(" off=%llu len=%llu", (unsigned long long)r->holder.l_offset, (unsigned long long)r->holder.l_len);
	}
	if (r->kind >= NLM_TEST_CALL && r->kind <= NLM_UNLOCK_CALL && !r->cookie_ok) {
		printf(" cookie=mismatch");
		sc->errors++;
	}
	putchar('\n');
}

static const struct {
	const char *word;
	int kind;
} OPS[] = {
	{ "null", NLM_NULL_CALL }, { "test", NLM_TEST_CALL }, { "lock", NLM_LOCK_CALL }, { "cancel", NLM_CANCEL_CALL },
	{ "unlock", NLM_UNLOCK_CALL }, { "sm-null", SM_NULL_CALL }, { "sm-stat", SM_STAT_CALL }, { "sm-mon", SM_MON_CALL },
	{ "sm-unmon", SM_UNMON_CALL }, { "sm-unmon-all", SM_UNMON_ALL_CALL }, { "sm-simu-crash", SM_SIMU_CRASH_CALL },
	{ "sm-notify", SM_NOTIFY_CALL },
};

/* One op; -1 for a script error (exit 2), 0 otherwise (a failed call counts in sc->errors). */
static int run_op(struct script *sc, const char *word)
{
	char buf[2400], err[300];
	if (strlen(word) >= sizeof buf) {
		fprintf(stderr, "nfsprobe: op too long: %.40s...\n", word);
		return -1;
	}
	strcpy(buf, word);
	if (strncmp(buf, "file=", 5) == 0) {
		if (open_file(sc->p, buf + 5, &sc->fh, sc->path, sizeof sc->path, err, sizeof err) != 0) {
			printf("FILE error: %s\n", err);
			sc->errors++;
			return 0;
		}
		printf("FILE ok\n");
		return 0;
	}
	if (strncmp(buf, "fh=", 3) == 0) {
		size_t len;
		if (parse_hex(buf + 3, sc->fh.data, sizeof sc->fh.data, &len) != 0) {
			fprintf(stderr, "nfsprobe: fh= takes 0 to %d bytes in hex, not '%s'\n", NFS3_FHSIZE, buf + 3);
			return -1;
		}
		sc->fh.len = (uint32_t)len;
		printf("FH ok\n");
		return 0;
	}
	if (strncmp(buf, "sleep=", 6) == 0) {
		uint64_t ms;
		if (parse_u64(buf + 6, &ms) != 0 || ms > 600000) {
			fprintf(stderr, "nfsprobe: sleep= takes 0 to 600000 ms\n");
			return -1;
		}
		sleep_ms((unsigned)ms);
		printf("SLEEP ok\n");
		return 0;
	}
	if (strcmp(buf, "unlink") == 0) {
		/* The handle stays: the next calls on it name a file that is gone. */
		int rc = nfs_unlink(sc->p->nfs, sc->path);
		if (rc == 0) {
			printf("UNLINK ok\n");
		} else {
			printf("UNLINK error: %s\n", nfs_get_error(sc->p->nfs));
			sc->errors++;
		}
		return 0;
	}
	char *fields = strchr(buf, ',');
	if (fields != NULL)
		*fields++ = '\0';
	int kind = -1;
	for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
		if (strcmp(buf, OPS[i].word) == 0)
			kind = OPS[i].kind;
	struct nlm_lock_spec l;
	struct nsm_spec m;
	if (kind < 0 || parse_fields(sc, fields, &l, &m, err, sizeof err) != 0) {
		fprintf(stderr, "nfsprobe: op '%s': %s\n", word, kind < 0 ? "no such op" : err);
		return -1;
	}
	int nsm = kind >= SM_NULL_CALL;
	struct rpc_link *link = nsm ? &sc->nsm : &sc->nlm;
	struct nlm_reply r;
	nlm_reply_init(&r, kind);
	if (ensure_link(sc, nsm) == 0) {
		int rc = nsm ? nsm_queue(link, kind, &m, &r) : nlm_queue(link, kind, &l, &sc->fh, &r);
		if (rc == 0)
			link_pump(link, &r.done, now() + sc->p->opt.timeout_ms / 1000.0);
	}
	report(sc, &r, link);
	fflush(stdout);
	return 0;
}

/* Exit status: 0 when every op had its reply (whatever its status), 1 when one had none, 2 for a bad script. */
int run_nlm(struct probe *p)
{
	static struct script sc;
	char err[300];
	sc.p = p;
	if (open_file(p, p->opt.path, &sc.fh, sc.path, sizeof sc.path, err, sizeof err) != 0) {
		fprintf(stderr, "nfsprobe: %s\n", err);
		return 2;
	}
	int rc = 0;
	for (int i = 0; i < p->opt.nops && rc == 0; i++)
		rc = run_op(&sc, p->opt.ops[i]);
	link_close(&sc.nlm);
	link_close(&sc.nsm);
	return rc != 0 ? 2 : sc.errors > 0 ? 1 : 0;
}
