/*
 * Reading /dev/fuse on the main thread. The portable reader is a worker
 * thread blocked in read(2), which hands each request over with a
 * postMessage: one more thread wake-up per request, ~50 µs on a busy VM
 * and the same again in latency for every FUSE call (a file copied costs
 * seven). Here the fd is made non-blocking and watched by the main loop
 * itself (libuv's uv_poll, epoll underneath; /dev/fuse supports poll):
 *
 *   watch(fd, onReadable) -> handle   onReadable() runs on the main thread
 *                                     whenever a request may be read
 *   readInto(fd, buffer) -> n or -errno   one read(2), never throwing
 *   unwatch(handle)                   stop watching (idempotent)
 *
 * onReadable reads until readInto says -EAGAIN. The callback is made with
 * napi_make_callback, so promise jobs it queues run before the loop polls
 * again, as they do after any I/O callback of Node's own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <node_api.h>
#include <uv.h>

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int stopped;
} watcher;

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

static void stop(watcher *w) {
  if (w->stopped) return;
  w->stopped = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->context);
  uv_close((uv_handle_t *)&w->poll, on_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  watcher *w = h->data;
  if (w->stopped) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, ignored;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, status, &arg) == napi_ok) {
    /* The receiver must be an object (undefined is refused): the global, as for a plain call. An exception the callback throws becomes an uncaught exception, as for any callback. */
    napi_make_callback(env, w->context, recv, cb, 1, &arg, &ignored);
  }
  napi_close_handle_scope(env, scope);
}

static napi_value watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], name, out;
  int32_t fd;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      fd < 0 || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "watch(fd, onReadable)");
    return NULL;
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    napi_throw_error(env, "EBADF", "watch: fcntl O_NONBLOCK failed");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, NULL, "watch: no event loop");
    return NULL;
  }
  watcher *w = calloc(1, sizeof *w);
  if (w == NULL) {
    napi_throw_error(env, "ENOMEM", "watch: out of memory");
    return NULL;
  }
  w->env = env;
  w->poll.data = w;
  napi_create_string_utf8(env, "tsnfs.fuse.read", NAPI_AUTO_LENGTH, &name);
  if (uv_poll_init(loop, &w->poll, fd) != 0) {
    free(w);
    napi_throw_error(env, NULL, "watch: uv_poll_init failed");
    return NULL;
  }
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_async_init(env, NULL, name, &w->context);
  if (uv_poll_start(&w->poll, UV_READABLE, on_poll) != 0) {
    stop(w);
    napi_throw_error(env, NULL, "watch: uv_poll_start failed");
    return NULL;
  }
  napi_create_external(env, w, NULL, NULL, &out);
  return out;
}

static napi_value unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, NULL, "unwatch(handle)");
    return NULL;
  }
  stop(p);
  return NULL;
}

static napi_value read_into(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  int32_t fd;
  void *data;
  size_t len;
  bool is_buffer = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "readInto(fd, buffer)");
    return NULL;
  }
  ssize_t n = read(fd, data, len);
  napi_create_int64(env, n >= 0 ? (int64_t)n : -(int64_t)errno, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "watch", NAPI_AUTO_LENGTH, watch, NULL, &fn);
  napi_set_named_property(env, exports, "watch", fn);
  napi_create_function(env, "unwatch", NAPI_AUTO_LENGTH, unwatch, NULL, &fn);
  napi_set_named_property(env, exports, "unwatch", fn);
  napi_create_function(env, "readInto", NAPI_AUTO_LENGTH, read_into, NULL, &fn);
  napi_set_named_property(env, exports, "readInto", fn);
  return exports;
}
