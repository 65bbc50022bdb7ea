/*
 * nfsprobe: NFSv3 conformance checks and micro-benchmarks on Debian's
 * libnfs (4.x). The RPC and XDR code is libnfs's; the checks are ours.
 * Declarations shared by the files of the program.
 */
#ifndef NFSPROBE_PROBE_H
#define NFSPROBE_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>   /* libnfs.h uses struct timeval without including it */
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>
#include <nfsc/libnfs-raw-nlm.h>
#include <nfsc/libnfs-raw-nsm.h>

#define PROBE_VERSION "1.0"

/* Longest name we accept in a directory entry, and longest symlink text. */
#define NAME_CAP 1024
#define PATH_CAP 4096
/* Longest single transfer (-R, --rand-size, one conformance write). */
#define XFER_CAP (4u << 20)

/* A file handle copied out of a reply: at most NFS3_FHSIZE bytes (RFC 1813 §2.5). */
struct fh {
	uint32_t len;
	unsigned char data[NFS3_FHSIZE];
};

struct options {
	const char *mode;
	const char *url;
	const char *dir_name;     /* -D: work directory name (default nfsprobe.MODE.PID) */
	const char *label;        /* -l: copied into the JSON lines */
	unsigned files;           /* -N */
	unsigned inflight;        /* -K */
	unsigned size_mib;        /* -S */
	unsigned req_size;        /* -R (0: from FSINFO) */
	unsigned rand_size;       /* --rand-size */
	unsigned seconds;         /* -T */
	unsigned rdp_max;         /* --rdp-max: READDIRPLUS maxcount in meta */
	unsigned timeout_ms;      /* -t: per RPC */
	int stable;               /* --stable: UNSTABLE, DATA_SYNC or FILE_SYNC */
	int verify;               /* -V */
	int keep;                 /* -k: leave the work directory */
	/* nlm and nlm-bench */
	const char *path;         /* the file locked, in the export */
	char **ops;               /* nlm: the script, one op per word */
	int nops;
	unsigned nlm_port;        /* --nlm-port (0: ask the portmapper) */
	unsigned nsm_port;        /* --nsm-port (0: ask the portmapper) */
	unsigned pmap_port;       /* --pmap-port (111) */
	const char *caller;       /* --caller: NLM caller_name and NSM my_name (this host's name) */
};

struct probe {
	struct options opt;
	struct nfs_context *nfs;
	struct rpc_context *rpc;
	int dead;                 /* the connection failed: no more calls */
	char server[256];
	char export_path[1024];
	struct fh root;
	FSINFO3resok fsinfo;
	int have_fsinfo;
	unsigned name_max;        /* PATHCONF's, 0 if unknown */
	char work_name[128];      /* a directory at the export root */
	char work_path[160];      /* "/" + work_name, for libnfs's path calls */
	struct fh work;
	int have_work;
	unsigned passed, failed;
};

/* One directory entry of a READDIR or READDIRPLUS reply, as handed to a visitor. */
struct dirent3 {
	uint64_t fileid;
	uint64_t cookie;
	const char *name;
	size_t name_len;
	int has_attr;
	const fattr3 *attr;
	int has_fh;
	const struct fh *fh;
};

typedef void (*entry_fn)(void *ctx, const struct dirent3 *e);

/*
 * What a raw call's reply held, copied out (libnfs frees the reply after the
 * callback). buf, buf_cap, on_entry and entry_ctx are the caller's and kept
 * from call to call; everything else is reset when a call is queued, so a
 * struct reply must start zeroed.
 */
struct reply {
	int status;               /* nfsstat3, or -1 when there was no usable reply */
	char error[200];          /* the reason when status is -1 */
	int has_fh;
	struct fh fh;             /* LOOKUP, CREATE, MKDIR, SYMLINK */
	int has_attr;
	fattr3 attr;              /* GETATTR, or the object's post-op attributes */
	int has_dir;
	fattr3 dir;               /* the directory's post-op attributes */
	int has_before;
	wcc_attr before;          /* pre-op attributes of SETATTR's object / a directory */
	uint32_t asked;           /* READ: count asked */
	uint32_t count;           /* READ, WRITE */
	int eof;
	int committed;            /* WRITE */
	unsigned char verf[NFS3_WRITEVERFSIZE];  /* WRITE, COMMIT */
	uint32_t access;
	unsigned char *buf;       /* READ data / READLINK text goes here (NULL: dropped) */
	uint32_t buf_cap;
	unsigned char cookieverf[NFS3_COOKIEVERFSIZE];
	uint32_t entries;         /* READDIR(PLUS): entries in this reply */
	uint64_t last_cookie;
	uint64_t est_bytes;       /* READDIR(PLUS): reply size by RFC 1813's XDR, estimated */
	entry_fn on_entry;
	void *entry_ctx;
	FSINFO3resok fsinfo;
	FSSTAT3resok fsstat;
	PATHCONF3resok pathconf;
};

typedef void (*decode_fn)(void *res, struct reply *r);

/* One outstanding raw call. */
struct call {
	struct reply *r;
	decode_fn decode;
	int done;
	uint64_t index;           /* pipelines: which op */
	unsigned slot;            /* pipelines: which of the k slots carries it */
	double t0;                /* pipelines: when it was queued */
};

/* rpc.c: raw NFSv3 calls. Each synchronous call returns the reply's nfsstat3 or -1. */
void call_init(struct call *c, struct reply *r);
int pump_until(struct probe *p, const int *done);
int pump_some(struct probe *p);
int fh3(const struct fh *f, nfs_fh3 *out);
sattr3 sattr_none(void);
const char *status_name(int status);

int q_null(struct probe *p, struct call *c);
int q_getattr(struct probe *p, struct call *c, const struct fh *f);
int q_lookup(struct probe *p, struct call *c, const struct fh *dir, const char *name);
int q_create(struct probe *p, struct call *c, const struct fh *dir, const char *name, int how, uint32_t mode, const unsigned char *verf);
int q_remove(struct probe *p, struct call *c, const struct fh *dir, const char *name);
int q_read(struct probe *p, struct call *c, const struct fh *f, uint64_t off, uint32_t count);
int q_write(struct probe *p, struct call *c, const struct fh *f, uint64_t off, const void *data, uint32_t count, int stable);
int q_readdirplus(struct probe *p, struct call *c, const struct fh *dir, uint64_t cookie, const unsigned char *verf, uint32_t dircount, uint32_t maxcount);

int nfs3_null(struct probe *p, struct reply *r);
int nfs3_getattr(struct probe *p, const struct fh *f, struct reply *r);
int nfs3_setattr(struct probe *p, const struct fh *f, const sattr3 *s, const nfstime3 *guard, struct reply *r);
int nfs3_lookup(struct probe *p, const struct fh *dir, const char *name, struct reply *r);
int nfs3_access(struct probe *p, const struct fh *f, uint32_t bits, struct reply *r);
int nfs3_readlink(struct probe *p, const struct fh *f, struct reply *r);
int nfs3_read(struct probe *p, const struct fh *f, uint64_t off, uint32_t count, struct reply *r);
int nfs3_write(struct probe *p, const struct fh *f, uint64_t off, const void *data, uint32_t count, int stable, struct reply *r);
int nfs3_create(struct probe *p, const struct fh *dir, const char *name, int how, uint32_t mode, const unsigned char *verf, struct reply *r);
int nfs3_create_sized(struct probe *p, const struct fh *dir, const char *name, int how, uint64_t size, struct reply *r);
int nfs3_mkdir(struct probe *p, const struct fh *dir, const char *name, uint32_t mode, struct reply *r);
int nfs3_symlink(struct probe *p, const struct fh *dir, const char *name, const char *target, struct reply *r);
int nfs3_remove(struct probe *p, const struct fh *dir, const char *name, struct reply *r);
int nfs3_rmdir(struct probe *p, const struct fh *dir, const char *name, struct reply *r);
int nfs3_rename(struct probe *p, const struct fh *from, const char *fname, const struct fh *to, const char *tname, struct reply *r);
int nfs3_link(struct probe *p, const struct fh *f, const struct fh *dir, const char *name, struct reply *r);
int nfs3_readdir(struct probe *p, const struct fh *dir, uint64_t cookie, const unsigned char *verf, uint32_t count, struct reply *r);
int nfs3_readdirplus(struct probe *p, const struct fh *dir, uint64_t cookie, const unsigned char *verf, uint32_t dircount, uint32_t maxcount, struct reply *r);
int nfs3_fsstat(struct probe *p, const struct fh *f, struct reply *r);
int nfs3_fsinfo(struct probe *p, const struct fh *f, struct reply *r);
int nfs3_pathconf(struct probe *p, const struct fh *f, struct reply *r);
int nfs3_commit(struct probe *p, const struct fh *f, struct reply *r);

/* pipeline.c: n calls, k in flight on the one connection. */
struct lat {
	double *us;
	size_t n, cap;
};

struct pipeline {
	struct probe *p;
	unsigned k;
	uint64_t n;               /* ops to run (with a deadline: the most) */
	double deadline;          /* monotonic seconds; 0: none */
	int (*issue)(struct pipeline *pl, struct call *c, uint64_t i);
	void (*done)(struct pipeline *pl, struct call *c);
	void *ctx;
	/* results */
	uint64_t completed, errors;
	char first_error[200];
	double secs;
	struct lat lat;
};

int pipeline_run(struct pipeline *pl);
void pipeline_error(struct pipeline *pl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* util.c */
double now(void);
void sleep_ms(unsigned ms);
void lat_add(struct lat *l, double us);
double lat_pct(struct lat *l, double q);
void lat_free(struct lat *l);
int pattern_init(void);
const unsigned char *pattern_at(uint64_t off, size_t len);
size_t pattern_diff(uint64_t off, const unsigned char *buf, size_t len);
uint64_t rng_next(uint64_t *s);
void fh_of(struct fh *dst, struct nfsfh *h);

struct json {
	char buf[4096];
	size_t len;
};
void json_begin(struct json *j);
void json_str(struct json *j, const char *key, const char *val);
void json_num(struct json *j, const char *key, double val);
void json_u64(struct json *j, const char *key, uint64_t val);
void json_print(struct json *j);

/* conform*.c */
void pass(struct probe *p, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fail(struct probe *p, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
const char *path_in(struct probe *p, char *buf, size_t cap, const char *name);
int run_conform(struct probe *p);
void conform_basics(struct probe *p);
void conform_data(struct probe *p);
void conform_dirs(struct probe *p);
void conform_names(struct probe *p);
void conform_attrs(struct probe *p);
void conform_create(struct probe *p);

/* bench.c */
int run_bench(struct probe *p);
void phase_head(struct json *j, struct probe *p, const char *mode, const char *phase, unsigned inflight);
void phase_counts(struct json *j, uint64_t ops, uint64_t errors, const char *first_error, double secs, struct lat *l);

/* nlm-rpc.c: raw NLM v4 and NSM v1 calls, each program on a TCP connection of its own. */
#define NLM_OH_CAP 1024           /* netobj's MAXNETOBJ_SZ */

enum call_kind {
	NLM_NULL_CALL, NLM_TEST_CALL, NLM_LOCK_CALL, NLM_CANCEL_CALL, NLM_UNLOCK_CALL,
	SM_NULL_CALL, SM_STAT_CALL, SM_MON_CALL, SM_UNMON_CALL, SM_UNMON_ALL_CALL, SM_SIMU_CRASH_CALL, SM_NOTIFY_CALL,
};

struct rpc_link {
	struct rpc_context *rpc;
	unsigned port;
	int dead;
	char error[200];
};

/* An nlm4_lock and the flags of the call that carries it. */
struct nlm_lock_spec {
	const char *caller;
	const char *oh;
	uint32_t svid;
	uint64_t l_offset, l_len;
	int exclusive, block, reclaim, state;
};

/* The arguments of an NSM call (mon_name, my_id, state, priv). */
struct nsm_spec {
	const char *mon_name;
	const char *my_name;
	int my_prog, my_vers, my_proc;
	int state;
	unsigned char priv[16];
};

struct nlm_reply {
	int kind;                 /* enum call_kind */
	int done;
	int status;               /* nlm4_stats, NSM's res (0 for calls without one), -1: no usable reply */
	char error[200];
	uint32_t cookie;          /* NLM: the cookie sent ... */
	int cookie_ok;            /* ... and whether the reply echoed it */
	int has_holder;           /* TEST denied */
	struct {
		int exclusive;
		uint32_t svid;
		char oh[NLM_OH_CAP + 1];
		uint64_t l_offset, l_len;
	} holder;
	int sm_state;             /* NSM: the state number */
	double t0;                /* nlm-bench: when the pair started */
};

const char *nlm_stat_name(int status);
void nlm_reply_init(struct nlm_reply *r, int kind);
int link_open(struct rpc_link *l, const char *server, int prog, int vers, unsigned port, unsigned pmap_port, unsigned timeout_ms);
void link_close(struct rpc_link *l);
int link_service(struct rpc_link *l, int wait_ms);
int link_pump(struct rpc_link *l, const int *done, double deadline);
int nlm_queue(struct rpc_link *l, int kind, const struct nlm_lock_spec *s, const struct fh *f, struct nlm_reply *r);
int nsm_queue(struct rpc_link *l, int kind, const struct nsm_spec *s, struct nlm_reply *r);

/* nlm.c, nlm-bench.c */
int open_file(struct probe *p, const char *path, struct fh *out, char *full, size_t full_cap, char *err, size_t cap);
int run_nlm(struct probe *p);
int run_nlm_bench(struct probe *p);

/* main.c */
int make_work_dir(struct probe *p);
int remove_tree(struct probe *p, const char *path, int depth);

#endif
