/*
 * nfsprobe MODE URL: options, the connection (MOUNT through libnfs), the
 * work directory every mode keeps its files in, and its removal.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "probe.h"

static const char USAGE[] =
	"usage: nfsprobe [options] conform|meta|seq|rand URL\n"
	"       nfsprobe [options] nlm URL PATH OP...\n"
	"       nfsprobe [options] nlm-bench URL PATH\n"
	"  URL: nfs://HOST/EXPORT?nfsport=P&mountport=M (libnfs URL; with both ports no portmapper is asked)\n"
	"  conform  conformance checks: PASS/FAIL lines, then \"N passed, M failed\"; exit 0 only if none failed\n"
	"  meta     CREATE, GETATTR, LOOKUP, READDIRPLUS, REMOVE of N files, K in flight (JSON lines)\n"
	"  seq      WRITE then READ an S MiB file in R-byte requests, K in flight (JSON lines)\n"
	"  rand     random aligned READs of --rand-size bytes in an S MiB file for T seconds (JSON lines)\n"
	"  nlm      NLM v4 / NSM calls on PATH (created if missing), one line per reply; OPs (README.md):\n"
	"           null  test|lock|cancel|unlock[,x][,off=N][,len=N][,svid=N][,oh=S][,caller=S][,block][,reclaim][,state=N]\n"
	"           sm-null  sm-stat|sm-mon|sm-unmon|sm-unmon-all|sm-simu-crash|sm-notify[,name=S][,my=S][,prog=N][,vers=N]\n"
	"           [,proc=N][,state=N][,priv=HEX]  file=PATH  fh=HEX  unlink  sleep=MS\n"
	"  nlm-bench  N LOCK/UNLOCK pairs on PATH, K in flight, distinct owners and ranges (one JSON line)\n"
	"options:\n"
	"  -N files (10000)  -K inflight (32)  -S size_mib (256)  -R req_size (FSINFO's, at most 1m; k/m suffixes)\n"
	"  --rand-size bytes (4096)  -T secs (10)  --stable unstable|datasync|filesync (unstable)  -V verify reads\n"
	"  --rdp-max bytes (32768: meta's READDIRPLUS maxcount)  -t timeout_ms per call (30000)\n"
	"  -D dir (work directory name; default nfsprobe.MODE.PID)  -l label  -k keep the work directory\n"
	"  --nlm-port P  --nsm-port P (default: ask the portmapper)  --pmap-port P (111)\n"
	"  --caller NAME (NLM caller_name and NSM my_name; default this host's name)\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "nfsprobe: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n%s", USAGE);
	va_end(ap);
	return 2;
}

/* A decimal count with an optional k or m (binary) suffix, within [lo, hi]. */
static int parse_count(const char *s, unsigned long long lo, unsigned long long hi, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || s[0] == '-')
		return -1;
	if (*end == 'k' || *end == 'K') {
		v <<= 10;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v <<= 20;
		end++;
	}
	if (*end != '\0' || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
		{ "rand-size", required_argument, NULL, 1 },
		{ "stable", required_argument, NULL, 2 },
		{ "rdp-max", required_argument, NULL, 3 },
		{ "nlm-port", required_argument, NULL, 4 },
		{ "nsm-port", required_argument, NULL, 5 },
		{ "pmap-port", required_argument, NULL, 6 },
		{ "caller", required_argument, NULL, 7 },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof *o);
	o->files = 10000;
	o->inflight = 32;
	o->size_mib = 256;
	o->rand_size = 4096;
	o->seconds = 10;
	o->rdp_max = 32768;
	o->timeout_ms = 30000;
	o->stable = UNSTABLE;
	o->label = "";
	o->pmap_port = 111;
	static char host[256];
	if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
		snprintf(host, sizeof host, "localhost");
	o->caller = host;
	int ch;
	while ((ch = getopt_long(argc, argv, "N:K:S:R:T:D:l:t:kVh", longs, NULL)) != -1) {
		int bad = 0;
		switch (ch) {
		case 'N': bad = parse_count(optarg, 1, 10000000, &o->files); break;
		case 'K': bad = parse_count(optarg, 1, 4096, &o->inflight); break;
		case 'S': bad = parse_count(optarg, 1, 1u << 20, &o->size_mib); break;
		case 'R': bad = parse_count(optarg, 512, XFER_CAP, &o->req_size); break;
		case 'T': bad = parse_count(optarg, 1, 86400, &o->seconds); break;
		case 't': bad = parse_count(optarg, 100, 3600000, &o->timeout_ms); break;
		case 1: bad = parse_count(optarg, 1, XFER_CAP, &o->rand_size); break;
		case 3: bad = parse_count(optarg, 512, 1u << 24, &o->rdp_max); break;
		case 4: bad = parse_count(optarg, 1, 65535, &o->nlm_port); break;
		case 5: bad = parse_count(optarg, 1, 65535, &o->nsm_port); break;
		case 6: bad = parse_count(optarg, 1, 65535, &o->pmap_port); break;
		case 7:
			if (strlen(optarg) == 0 || strlen(optarg) > NAME_CAP)
				return usage_error("--caller: 1 to %d bytes", NAME_CAP);
			o->caller = optarg;
			break;
		case 2:
			if (strcmp(optarg, "unstable") == 0)
				o->stable = UNSTABLE;
			else if (strcmp(optarg, "datasync") == 0)
				o->stable = DATA_SYNC;
			else if (strcmp(optarg, "filesync") == 0)
				o->stable = FILE_SYNC;
			else
				bad = 1;
			break;
		case 'D':
			if (strlen(optarg) == 0 || strlen(optarg) > 100 || strchr(optarg, '/') != NULL)
				return usage_error("-D: a name of 1 to 100 bytes without '/', not '%s'", optarg);
			o->dir_name = optarg;
			break;
		case 'l': o->label = optarg; break;
		case 'k': o->keep = 1; break;
		case 'V': o->verify = 1; break;
		case 'h': fputs(USAGE, stdout); exit(0);
		default: return usage_error("%s", "unknown option");
		}
		if (bad)
			return usage_error("bad value '%s'", optarg);
	}
	if (argc - optind < 2)
		return usage_error("%s", "expected MODE URL");
	o->mode = argv[optind];
	o->url = argv[optind + 1];
	int rest = argc - optind - 2;
	if (strcmp(o->mode, "nlm") == 0 || strcmp(o->mode, "nlm-bench") == 0) {
		int script = strcmp(o->mode, "nlm") == 0;
		if (rest < 1 || (script && rest < 2) || (!script && rest != 1))
			return usage_error("%s", script ? "expected nlm URL PATH OP..." : "expected nlm-bench URL PATH");
		o->path = argv[optind + 2];
		o->ops = argv + optind + 3;
		o->nops = rest - 1;
		return 0;
	}
	if (rest != 0)
		return usage_error("%s", "expected MODE URL");
	if (strcmp(o->mode, "conform") != 0 && strcmp(o->mode, "meta") != 0 && strcmp(o->mode, "seq") != 0 &&
	    strcmp(o->mode, "rand") != 0)
		return usage_error("no mode '%s' (conform, meta, seq, rand, nlm, nlm-bench)", o->mode);
	return 0;
}

/* MOUNT the export, take the root's handle and FSINFO. */
static int connect_probe(struct probe *p, char *err, size_t cap)
{
	p->nfs = nfs_init_context();
	if (p->nfs == NULL) {
		snprintf(err, cap, "nfs_init_context failed");
		return -1;
	}
	/* Every listing must come from the server; dircache=1 in the URL turns the cache back on. */
	nfs_set_dircache(p->nfs, 0);
	/* A lost connection ends the run: reconnecting would hide a server that crashed. */
	nfs_set_autoreconnect(p->nfs, 0);
	struct nfs_url *u = nfs_parse_url_dir(p->nfs, p->opt.url);
	if (u == NULL || u->server == NULL || u->path == NULL) {
		snprintf(err, cap, "bad URL %s: %s", p->opt.url, nfs_get_error(p->nfs));
		return -1;
	}
	snprintf(p->server, sizeof p->server, "%s", u->server);
	snprintf(p->export_path, sizeof p->export_path, "%s", u->path);
	nfs_destroy_url(u);
	nfs_set_timeout(p->nfs, (int)p->opt.timeout_ms);
	if (nfs_mount(p->nfs, p->server, p->export_path) != 0) {
		snprintf(err, cap, "MOUNT %s:%s: %s", p->server, p->export_path, nfs_get_error(p->nfs));
		return -1;
	}
	p->rpc = nfs_get_rpc_context(p->nfs);
	struct nfsfh *root;
	if (nfs_open(p->nfs, "/", O_RDONLY, &root) != 0) {
		snprintf(err, cap, "open of the export root: %s", nfs_get_error(p->nfs));
		return -1;
	}
	fh_of(&p->root, root);
	nfs_close(p->nfs, root);
	if (p->root.len == 0) {
		snprintf(err, cap, "no usable root handle from libnfs (is this libnfs 4.x?)");
		return -1;
	}
	struct reply r = { 0 };
	if (nfs3_fsinfo(p, &p->root, &r) == NFS3_OK) {
		p->fsinfo = r.fsinfo;
		p->have_fsinfo = 1;
	}
	return 0;
}

int make_work_dir(struct probe *p)
{
	if (p->opt.dir_name != NULL)
		snprintf(p->work_name, sizeof p->work_name, "%s", p->opt.dir_name);
	else
		snprintf(p->work_name, sizeof p->work_name, "nfsprobe.%s.%ld", p->opt.mode, (long)getpid());
	snprintf(p->work_path, sizeof p->work_path, "/%s", p->work_name);
	struct reply r = { 0 };
	int st = nfs3_mkdir(p, &p->root, p->work_name, 0777, &r);
	if (st != NFS3_OK) {
		fprintf(stderr, "nfsprobe: MKDIR %s: %s\n", p->work_name, st == -1 ? r.error : status_name(st));
		return -1;
	}
	if (!r.has_fh && nfs3_lookup(p, &p->root, p->work_name, &r) != NFS3_OK) {
		fprintf(stderr, "nfsprobe: LOOKUP %s: %s\n", p->work_name, r.status == -1 ? r.error : status_name(r.status));
		return -1;
	}
	p->work = r.fh;
	p->have_work = 1;
	return 0;
}

/* Remove a directory and everything under it through libnfs's path calls; 0 or -errno. */
int remove_tree(struct probe *p, const char *path, int depth)
{
	if (depth > 64)
		return -ELOOP;
	struct nfsdir *d;
	int rc = nfs_opendir(p->nfs, path, &d);
	if (rc != 0)
		return rc;
	char child[2048];
	struct nfsdirent *e;
	int first = 0;
	while ((e = nfs_readdir(p->nfs, d)) != NULL) {
		if (strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0)
			continue;
		if ((size_t)snprintf(child, sizeof child, "%s/%s", path, e->name) >= sizeof child)
			continue;
		int r = e->type == NF3DIR ? remove_tree(p, child, depth + 1) : nfs_unlink(p->nfs, child);
		if (r != 0 && first == 0)
			first = r;
	}
	nfs_closedir(p->nfs, d);
	rc = nfs_rmdir(p->nfs, path);
	return first != 0 ? first : rc;
}

int main(int argc, char **argv)
{
	static struct probe probe;
	struct probe *p = &probe;
	int rc = parse_args(argc, argv, &p->opt);
	if (rc != 0)
		return rc;
	if (pattern_init() != 0) {
		fprintf(stderr, "nfsprobe: out of memory\n");
		return 2;
	}
	char err[1400];
	int connected = connect_probe(p, err, sizeof err) == 0;
	if (strcmp(p->opt.mode, "conform") == 0) {
		if (!connected) {
			fail(p, "mount", "%s", err);
			printf("%u passed, %u failed\n", p->passed, p->failed);
			return 1;
		}
		pass(p, "mount", "%s:%s, root handle of %u bytes", p->server, p->export_path, p->root.len);
		rc = run_conform(p);
	} else if (strcmp(p->opt.mode, "nlm") == 0 || strcmp(p->opt.mode, "nlm-bench") == 0) {
		if (!connected) {
			fprintf(stderr, "nfsprobe: %s\n", err);
			return 2;
		}
		rc = strcmp(p->opt.mode, "nlm") == 0 ? run_nlm(p) : run_nlm_bench(p);
	} else {
		if (!connected) {
			fprintf(stderr, "nfsprobe: %s\n", err);
			return 2;
		}
		rc = run_bench(p);
	}
	if (!p->dead) {
		nfs_umount(p->nfs);
		nfs_destroy_context(p->nfs);
	}
	return rc;
}
