/*
 * utimensat(2) for the local backend, with nanoseconds and UTIME_OMIT,
 * which Node's fs.utimes cannot give (libuv takes a double and truncates to
 * microseconds, and always sets both times). One call:
 *
 *   setTimes(fd, atimeSec, atimeNsec, mtimeSec, mtimeNsec) -> errno (0: done)
 *
 * on the object the fd holds (an O_PATH pin or an open file), named through
 * the /proc/self/fd/<fd> magic link: the kernel jumps to exactly that
 * object and follows nothing further, so a symlink's own times change.
 * A nanosecond field may be UTIME_NOW or UTIME_OMIT (the values are exported
 * as UTIME_NOW / UTIME_OMIT). It runs on the calling thread: an inode update
 * in memory on a local file system, a few microseconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <node_api.h>

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}

static napi_value set_times(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_value result;
  int64_t fd, as, an, ms, mn;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5 ||
      get_i64(env, argv[0], &fd) || get_i64(env, argv[1], &as) || get_i64(env, argv[2], &an) ||
      get_i64(env, argv[3], &ms) || get_i64(env, argv[4], &mn) || fd < 0 || fd > 0x7fffffff) {
    napi_throw_type_error(env, NULL, "setTimes(fd, atimeSec, atimeNsec, mtimeSec, mtimeNsec): five integers");
    return NULL;
  }
  char path[40];
  snprintf(path, sizeof path, "/proc/self/fd/%d", (int)fd);
  struct timespec ts[2] = { { (time_t)as, (long)an }, { (time_t)ms, (long)mn } };
  int rc = utimensat(AT_FDCWD, path, ts, 0) == 0 ? 0 : errno;
  napi_create_int32(env, rc, &result);
  return result;
}

static napi_value int_value(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "setTimes", NAPI_AUTO_LENGTH, set_times, NULL, &fn) != napi_ok) return NULL;
  napi_set_named_property(env, exports, "setTimes", fn);
  napi_set_named_property(env, exports, "UTIME_NOW", int_value(env, UTIME_NOW));
  napi_set_named_property(env, exports, "UTIME_OMIT", int_value(env, UTIME_OMIT));
  return exports;
}
