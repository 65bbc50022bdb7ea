/*
 * Raw NLM v4 and NSM v1 calls through libnfs (rpc_nlm4_*_async,
 * rpc_nsm1_*_async) on connections of their own: the lock manager and the
 * status monitor are separate RPC programs, found through the server's
 * portmapper (--pmap-port, 111 by default) unless --nlm-port / --nsm-port
 * name their port. Each reply is copied into a struct nlm_reply inside the
 * callback (libnfs frees it afterwards); the holder's owner handle is
 * checked against its cap before it is copied.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include "probe.h"

const char *nlm_stat_name(int status)
{
	switch (status) {
	case -1: return "no reply";
	case NLM4_GRANTED: return "NLM4_GRANTED";
	case NLM4_DENIED: return "NLM4_DENIED";
	case NLM4_DENIED_NOLOCKS: return "NLM4_DENIED_NOLOCKS";
	case NLM4_BLOCKED: return "NLM4_BLOCKED";
	case NLM4_DENIED_GRACE_PERIOD: return "NLM4_DENIED_GRACE_PERIOD";
	case NLM4_DEADLCK: return "NLM4_DEADLCK";
	case NLM4_ROFS: return "NLM4_ROFS";
	case NLM4_STALE_FH: return "NLM4_STALE_FH";
	case NLM4_FBIG: return "NLM4_FBIG";
	case NLM4_FAILED: return "NLM4_FAILED";
	default: return "NLM4_(unknown)";
	}
}

void nlm_reply_init(struct nlm_reply *r, int kind)
{
	memset(r, 0, sizeof *r);
	r->kind = kind;
	r->status = -1;
	snprintf(r->error, sizeof r->error, "no reply");
}

/* One poll of a connection's socket (at most wait_ms) and libnfs's work on it; -1 when the connection failed. */
int link_service(struct rpc_link *l, int wait_ms)
{
	if (l->dead)
		return -1;
	struct pollfd pfd = { .fd = rpc_get_fd(l->rpc), .events = (short)rpc_which_events(l->rpc) };
	int n = poll(&pfd, 1, wait_ms);
	if (n < 0 && errno != EINTR) {
		snprintf(l->error, sizeof l->error, "poll: %s", strerror(errno));
		l->dead = 1;
		return -1;
	}
	if (rpc_service(l->rpc, n > 0 ? pfd.revents : 0) < 0) {
		const char *why = rpc_get_error(l->rpc);
		snprintf(l->error, sizeof l->error, "connection failed: %.150s", why != NULL ? why : "closed by the server");
		l->dead = 1;
		return -1;
	}
	return 0;
}

/* Run a connection until *done; 0, or -1 when it failed or the deadline (monotonic seconds) passed. */
int link_pump(struct rpc_link *l, const int *done, double deadline)
{
	while (!*done) {
		if (now() > deadline) {
			snprintf(l->error, sizeof l->error, "no reply within the timeout");
			l->dead = 1;
			return -1;
		}
		if (link_service(l, 100) != 0)
			return -1;
	}
	return 0;
}

struct waiter {
	int done;
	int ok;
	uint32_t port;
	char error[200];
};

static void on_connected(struct rpc_context *rpc, int status, void *data, void *priv)
{
	(void)rpc;
	struct waiter *w = priv;
	w->ok = status == RPC_STATUS_SUCCESS;
	if (!w->ok)
		snprintf(w->error, sizeof w->error, "%.150s", data != NULL ? (const char *)data : "connection failed");
	w->done = 1;
}

static void on_port(struct rpc_context *rpc, int status, void *data, void *priv)
{
	(void)rpc;
	struct waiter *w = priv;
	w->ok = status == RPC_STATUS_SUCCESS && data != NULL;
	if (w->ok)
		w->port = *(uint32_t *)data;
	else
		snprintf(w->error, sizeof w->error, "%.150s", status == RPC_STATUS_ERROR && data != NULL ? (const char *)data : "no reply");
	w->done = 1;
}

static int connect_to(struct rpc_link *l, const char *server, unsigned port, double deadline)
{
	struct waiter w = { 0 };
	l->rpc = rpc_init_context();
	if (l->rpc == NULL) {
		snprintf(l->error, sizeof l->error, "rpc_init_context failed");
		return -1;
	}
	if (rpc_connect_async(l->rpc, server, (int)port, on_connected, &w) != 0) {
		snprintf(l->error, sizeof l->error, "connect to %s:%u: %.150s", server, port, rpc_get_error(l->rpc));
		return -1;
	}
	if (link_pump(l, &w.done, deadline) != 0)
		return -1;
	if (!w.ok) {
		snprintf(l->error, sizeof l->error, "connect to %s:%u: %.150s", server, port, w.error);
		return -1;
	}
	return 0;
}

void link_close(struct rpc_link *l)
{
	if (l->rpc != NULL)
		rpc_destroy_context(l->rpc);
	l->rpc = NULL;
}

/*
 * Connect l to program prog version vers over TCP: at `port`, or where the
 * portmapper at pmap_port says (PMAP GETPORT).
 */
int link_open(struct rpc_link *l, const char *server, int prog, int vers, unsigned port, unsigned pmap_port, unsigned timeout_ms)
{
	double deadline = now() + timeout_ms / 1000.0;
	memset(l, 0, sizeof *l);
	if (port == 0) {
		struct rpc_link pm;
		memset(&pm, 0, sizeof pm);
		int rc = connect_to(&pm, server, pmap_port, deadline);
		struct waiter w = { 0 };
		if (rc == 0 && rpc_pmap2_getport_async(pm.rpc, prog, vers, IPPROTO_TCP, on_port, &w) != 0) {
			snprintf(pm.error, sizeof pm.error, "%.150s", rpc_get_error(pm.rpc));
			rc = -1;
		}
		if (rc == 0)
			rc = link_pump(&pm, &w.done, deadline);
		if (rc == 0 && !w.ok) {
			snprintf(pm.error, sizeof pm.error, "%s", w.error);
			rc = -1;
		}
		if (rc == 0 && (w.port == 0 || w.port > 65535)) {
			snprintf(pm.error, sizeof pm.error, "program %d version %d is not registered (port %u)", prog, vers, w.port);
			rc = -1;
		}
		if (rc != 0)
			snprintf(l->error, sizeof l->error, "portmapper at %s:%u: %.150s", server, pmap_port, pm.error);
		/* Not before the waiter's callback can no longer run: libnfs calls it from here when it is still queued. */
		link_close(&pm);
		if (rc != 0)
			return -1;
		port = w.port;
	}
	l->port = port;
	return connect_to(l, server, port, deadline);
}

/* Calls */

static void take_holder(struct nlm_reply *r, const nlm4_holder *h)
{
	r->has_holder = 1;
	r->holder.exclusive = h->exclusive != 0;
	r->holder.svid = h->svid;
	r->holder.l_offset = h->l_offset;
	r->holder.l_len = h->l_len;
	size_t n = h->oh == NULL ? 0 : strnlen(h->oh, NLM_OH_CAP + 1);
	if (n > NLM_OH_CAP) {
		r->status = -1;
		snprintf(r->error, sizeof r->error, "holder's owner handle longer than %u bytes", NLM_OH_CAP);
		return;
	}
	memcpy(r->holder.oh, h->oh, n);
	r->holder.oh[n] = '\0';
}

static void take_cookie(struct nlm_reply *r, const nlm_cookie *c)
{
	r->cookie_ok = c->data.data_len == sizeof r->cookie && memcmp(c->data.data_val, &r->cookie, sizeof r->cookie) == 0;
}

static void on_nlm(struct rpc_context *rpc, int status, void *data, void *priv)
{
	(void)rpc;
	struct nlm_reply *r = priv;
	r->done = 1;
	if (status == RPC_STATUS_SUCCESS && (r->kind == NLM_NULL_CALL || r->kind >= SM_NULL_CALL)) {
		r->error[0] = '\0';
		r->status = 0;
		if (data == NULL || r->kind == SM_NULL_CALL || r->kind == SM_SIMU_CRASH_CALL || r->kind == SM_NOTIFY_CALL)
			return;
		if (r->kind == SM_STAT_CALL) {
			const NSM1_STATres *x = data;
			r->status = (int)x->res;
			r->sm_state = x->state;
		} else if (r->kind == SM_MON_CALL) {
			const NSM1_MONres *x = data;
			r->status = (int)x->res;
			r->sm_state = x->state;
		} else if (r->kind == SM_UNMON_CALL) {
			r->sm_state = ((const NSM1_UNMONres *)data)->state;
		} else {
			r->sm_state = ((const NSM1_UNMONALLres *)data)->state;
		}
		return;
	}
	if (status == RPC_STATUS_SUCCESS && data != NULL) {
		r->error[0] = '\0';
		if (r->kind == NLM_TEST_CALL) {
			const NLM4_TESTres *x = data;
			take_cookie(r, &x->cookie);
			r->status = (int)x->reply.status;
			if (x->reply.status == NLM4_DENIED)
				take_holder(r, &x->reply.nlm4_testreply_u.lock.holder);
		} else {
			/* LOCK, CANCEL and UNLOCK answer alike: nlm4_res {cookie, stat}. */
			const NLM4_LOCKres *x = data;
			take_cookie(r, &x->cookie);
			r->status = (int)x->status;
		}
		return;
	}
	if (status == RPC_STATUS_SUCCESS)
		snprintf(r->error, sizeof r->error, "a reply without a result");
	else if (status == RPC_STATUS_ERROR)
		snprintf(r->error, sizeof r->error, "RPC error: %.150s", data != NULL ? (const char *)data : "?");
	else if (status == RPC_STATUS_TIMEOUT)
		snprintf(r->error, sizeof r->error, "no reply in time (timeout)");
	else
		snprintf(r->error, sizeof r->error, "call cancelled");
}

static uint32_t next_cookie = 0x6e6c6d00; /* "nlm\0" */

/* The lock as libnfs's argument type; it points into the spec and the handle. */
static nlm4_lock lock_arg(const struct nlm_lock_spec *s, const struct fh *f)
{
	nlm4_lock l;
	l.caller_name = (char *)s->caller;
	l.fh.data.data_len = f->len;
	l.fh.data.data_val = (char *)f->data;
	l.oh = (char *)s->oh;
	l.svid = s->svid;
	l.l_offset = s->l_offset;
	l.l_len = s->l_len;
	return l;
}

/*
 * Queue one NLM call described by s on l; the reply lands in r (which must
 * stay put until r->done). 0, or -1 when it could not be sent.
 */
int nlm_queue(struct rpc_link *l, int kind, const struct nlm_lock_spec *s, const struct fh *f, struct nlm_reply *r)
{
	nlm_reply_init(r, kind);
	r->cookie = next_cookie++;
	nlm_cookie cookie = { .data = { .data_len = sizeof r->cookie, .data_val = (char *)&r->cookie } };
	int rc;
	if (l->dead) {
		snprintf(r->error, sizeof r->error, "connection lost");
		r->done = 1;
		return -1;
	}
	switch (kind) {
	case NLM_NULL_CALL:
		rc = rpc_nlm4_null_async(l->rpc, on_nlm, r);
		break;
	case NLM_TEST_CALL: {
		NLM4_TESTargs a = { .cookie = cookie, .exclusive = (uint32_t)s->exclusive, .lock = lock_arg(s, f) };
		rc = rpc_nlm4_test_async(l->rpc, on_nlm, &a, r);
		break;
	}
	case NLM_LOCK_CALL: {
		NLM4_LOCKargs a = { .cookie = cookie, .block = (uint32_t)s->block, .exclusive = (uint32_t)s->exclusive,
				    .lock = lock_arg(s, f), .reclaim = (uint32_t)s->reclaim, .state = s->state };
		rc = rpc_nlm4_lock_async(l->rpc, on_nlm, &a, r);
		break;
	}
	case NLM_CANCEL_CALL: {
		NLM4_CANCargs a = { .cookie = cookie, .block = (uint32_t)s->block, .exclusive = (uint32_t)s->exclusive, .lock = lock_arg(s, f) };
		rc = rpc_nlm4_cancel_async(l->rpc, on_nlm, &a, r);
		break;
	}
	case NLM_UNLOCK_CALL: {
		NLM4_UNLOCKargs a = { .cookie = cookie, .lock = lock_arg(s, f) };
		rc = rpc_nlm4_unlock_async(l->rpc, on_nlm, &a, r);
		break;
	}
	default:
		rc = -1;
	}
	if (rc != 0) {
		snprintf(r->error, sizeof r->error, "could not send: %.150s", rpc_get_error(l->rpc));
		r->done = 1;
		return -1;
	}
	return 0;
}

/* Queue one NSM call; s names the hosts and the callback (my_id). */
int nsm_queue(struct rpc_link *l, int kind, const struct nsm_spec *s, struct nlm_reply *r)
{
	nlm_reply_init(r, kind);
	struct nsm_my_id my = { .my_name = (char *)s->my_name, .my_prog = s->my_prog, .my_vers = s->my_vers, .my_proc = s->my_proc };
	int rc;
	if (l->dead) {
		snprintf(r->error, sizeof r->error, "connection lost");
		r->done = 1;
		return -1;
	}
	switch (kind) {
	case SM_NULL_CALL:
		rc = rpc_nsm1_null_async(l->rpc, on_nlm, r);
		break;
	case SM_STAT_CALL: {
		NSM1_STATargs a = { .mon_name = (char *)s->mon_name };
		rc = rpc_nsm1_stat_async(l->rpc, on_nlm, &a, r);
		break;
	}
	case SM_MON_CALL: {
		NSM1_MONargs a;
		memset(&a, 0, sizeof a);
		a.mon_id.mon_name = (char *)s->mon_name;
		a.mon_id.my_id = my;
		memcpy(a.priv, s->priv, sizeof a.priv);
		rc = rpc_nsm1_mon_async(l->rpc, on_nlm, &a, r);
		break;
	}
	case SM_UNMON_CALL: {
		NSM1_UNMONargs a = { .mon_id = { .mon_name = (char *)s->mon_name, .my_id = my } };
		rc = rpc_nsm1_unmon_async(l->rpc, on_nlm, &a, r);
		break;
	}
	case SM_UNMON_ALL_CALL: {
		NSM1_UNMONALLargs a = { .my_id = my };
		rc = rpc_nsm1_unmonall_async(l->rpc, on_nlm, &a, r);
		break;
	}
	case SM_SIMU_CRASH_CALL:
		rc = rpc_nsm1_simucrash_async(l->rpc, on_nlm, r);
		break;
	case SM_NOTIFY_CALL: {
		NSM1_NOTIFYargs a = { .mon_name = (char *)s->mon_name, .state = s->state };
		rc = rpc_nsm1_notify_async(l->rpc, on_nlm, &a, r);
		break;
	}
	default:
		rc = -1;
	}
	if (rc != 0) {
		snprintf(r->error, sizeof r->error, "could not send: %.150s", rpc_get_error(l->rpc));
		r->done = 1;
		return -1;
	}
	return 0;
}
