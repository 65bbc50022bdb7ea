/*
 * Two hot paths of the backends that Node cannot do cheaply (loader: vfs/native-io.ts).
 *
 *   readNoWait(fd, buf, offset, length, position) -> bytes read, or -errno
 *     preadv2(..., RWF_NOWAIT) on the calling thread: it reads only what is in the page cache and
 *     answers -EAGAIN instead of waiting for the disk. A cached 4 KiB block then costs a few
 *     microseconds instead of a thread-pool round trip (~15-20 us of CPU here); the caller falls
 *     back to Node's asynchronous read for whatever this did not give, so a cold read never
 *     blocks the event loop.
 *
 *   crc32c(crc, buf, start, end) -> crc
 *     The raw CRC-32C register update (no inversions, as the kernel's crc32c and
 *     vfs/engine/crc32c.ts crc32cUpdate) with the SSE4.2 crc32 instruction, about ten times the
 *     JavaScript slice-by-8. Exported only where the CPU has the instruction.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <node_api.h>

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok ? 0 : -1;
}

/* The bytes of a Buffer / Uint8Array argument. */
static int get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return -1;
  napi_typedarray_type type;
  void *p = NULL;
  size_t n = 0;
  if (napi_get_typedarray_info(env, v, &type, &n, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) return -1;
  *data = (uint8_t *)p;
  *len = n;
  return 0;
}

static napi_value int_value(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

static napi_value read_no_wait(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int64_t fd, offset, length, position;
  uint8_t *data;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 5 ||
      get_i64(env, argv[0], &fd) || get_bytes(env, argv[1], &data, &len) || get_i64(env, argv[2], &offset) ||
      get_i64(env, argv[3], &length) || get_i64(env, argv[4], &position) ||
      fd < 0 || fd > 0x7fffffff || offset < 0 || length < 0 || position < 0 || (uint64_t)offset + (uint64_t)length > len) {
    napi_throw_type_error(env, NULL, "readNoWait(fd, buf, offset, length, position): integers inside the buffer");
    return NULL;
  }
  struct iovec io = { data + offset, (size_t)length };
  ssize_t n = preadv2((int)fd, &io, 1, (off_t)position, RWF_NOWAIT);
  return int_value(env, n >= 0 ? (int64_t)n : -(int64_t)errno);
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = crc;
  while (n > 0 && ((uintptr_t)p & 7) != 0) { c = __builtin_ia32_crc32qi((uint32_t)c, *p++); n--; }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
  }
  while (n > 0) { c = __builtin_ia32_crc32qi((uint32_t)c, *p++); n--; }
  return (uint32_t)c;
}

static napi_value crc32c(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int64_t crc, start, end;
  uint8_t *data;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 4 ||
      get_i64(env, argv[0], &crc) || get_bytes(env, argv[1], &data, &len) || get_i64(env, argv[2], &start) ||
      get_i64(env, argv[3], &end) || start < 0 || end < start || (uint64_t)end > len) {
    napi_throw_type_error(env, NULL, "crc32c(crc, buf, start, end): integers inside the buffer");
    return NULL;
  }
  napi_value out;
  napi_create_uint32(env, crc32c_hw((uint32_t)crc, data + start, (size_t)(end - start)), &out);
  return out;
}
#endif

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok) napi_set_named_property(env, exports, name, fn);
}

NAPI_MODULE_INIT() {
  export_fn(env, exports, "readNoWait", read_no_wait);
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) export_fn(env, exports, "crc32c", crc32c);
#endif
  napi_set_named_property(env, exports, "EAGAIN", int_value(env, EAGAIN));
  return exports;
}
