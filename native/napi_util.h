/*
 * Shared helpers for the switchyard addon.
 *
 * The supervisor holds every listening socket, so native code must never abort:
 * every N-API call and every syscall is checked, and a failure becomes a thrown
 * JS error. After a helper here returns NULL/false, a JS exception is pending and
 * the caller only has to clean up (close what it opened) and return NULL.
 */
#ifndef SWITCHYARD_NAPI_UTIL_H
#define SWITCHYARD_NAPI_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <node_api.h>

/* Each source file registers its functions on `exports` through one hook. */
napi_status switchyard_init_sockets(napi_env env, napi_value exports);
napi_status switchyard_init_fdpass(napi_env env, napi_value exports);
napi_status switchyard_init_lock(napi_env env, napi_value exports);
napi_status switchyard_init_tcp(napi_env env, napi_value exports);
napi_status switchyard_init_counters(napi_env env, napi_value exports);
napi_status switchyard_init_notify(napi_env env, napi_value exports);
napi_status switchyard_init_relay(napi_env env, napi_value exports);

/* The shared connection counters' size (counters.c): app slots (MAX_APPS in config/limits.ts) and worker rows. */
#define SY_COUNTER_SLOTS 4096
#define SY_COUNTER_ROWS 1024
/* Buckets of the per-client connection counts (MaxConnectionsPerClient). */
#define SY_CLIENT_BUCKETS 65536

/* Throws for a failed N-API call unless an exception is already pending. */
static inline bool sy_napi_ok(napi_env env, napi_status status, const char *call) {
  if (status == napi_ok) return true;
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  napi_get_last_error_info(env, &info);
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    char msg[256];
    const char *why = (info != NULL && info->error_message != NULL) ? info->error_message : "unknown error";
    snprintf(msg, sizeof msg, "N-API call failed: %s (%s)", call, why);
    napi_throw_error(env, "ERR_NAPI", msg);
  }
  return false;
}

/* Check an N-API call; on failure throw and return NULL from the calling function. */
#define NAPI_CALL(env, call)                                                   \
  do {                                                                         \
    if (!sy_napi_ok((env), (call), #call)) return NULL;                        \
  } while (0)

/* Same, but jump to a cleanup label (for functions holding fds). */
#define NAPI_CALL_GOTO(env, call, label)                                       \
  do {                                                                         \
    if (!sy_napi_ok((env), (call), #call)) goto label;                         \
  } while (0)

/* Same, for init hooks that return napi_status. */
#define NAPI_CALL_STATUS(env, call)                                            \
  do {                                                                         \
    napi_status sy_status_ = (call);                                           \
    if (!sy_napi_ok((env), sy_status_, #call)) return sy_status_;              \
  } while (0)

#define SY_FN(name, fn) \
  { (name), NULL, (fn), NULL, NULL, NULL, napi_enumerable, NULL }

/* "EADDRINUSE" for EADDRINUSE. */
static inline const char *sy_errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#else
  switch (err) {
#define SY_E(e) case e: return #e;
    SY_E(EPERM) SY_E(ENOENT) SY_E(EINTR) SY_E(EIO) SY_E(EBADF) SY_E(EAGAIN)
    SY_E(ENOMEM) SY_E(EACCES) SY_E(EFAULT) SY_E(EINVAL) SY_E(ENFILE) SY_E(EMFILE)
    SY_E(ENOTSOCK) SY_E(EMSGSIZE) SY_E(EPROTONOSUPPORT) SY_E(EOPNOTSUPP)
    SY_E(EAFNOSUPPORT) SY_E(EADDRINUSE) SY_E(EADDRNOTAVAIL) SY_E(ENETDOWN)
    SY_E(ENETUNREACH) SY_E(ECONNRESET) SY_E(ENOBUFS) SY_E(EISCONN) SY_E(ENOTCONN)
    SY_E(ETIMEDOUT) SY_E(ECONNREFUSED) SY_E(EPIPE) SY_E(ENOPROTOOPT) SY_E(ETOOMANYREFS)
#undef SY_E
  }
#endif
  return "UNKNOWN";
}

/* Thread-safe human text for an errno. */
static inline const char *sy_errno_text(int err, char *buf, size_t len) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  (void)buf;
  (void)len;
  const char *text = strerrordesc_np(err);
  return text != NULL ? text : "Unknown error";
#else
  snprintf(buf, len, "errno %d", err);
  return buf;
#endif
}

/* "syscall detail: text of errno" (detail may be NULL or empty) into buf. */
static inline void sy_errno_message(char *buf, size_t size, int err, const char *syscall, const char *detail) {
  char textbuf[64];
  const char *text = sy_errno_text(err, textbuf, sizeof textbuf);
  if (detail != NULL && detail[0] != '\0')
    snprintf(buf, size, "%s %s: %s", syscall, detail, text);
  else
    snprintf(buf, size, "%s: %s", syscall, text);
}

/*
 * Throws Error{code: "EADDRINUSE", syscall: "bind", errno: -98} with message
 * "bind 127.0.0.1:80: Address already in use" (detail may be NULL).
 * errno is negative like in Node's own system errors, so util.getSystemErrorName() works.
 * Always returns NULL so callers can `return sy_throw_errno(...)`.
 */
static inline napi_value sy_throw_errno(napi_env env, int err, const char *syscall, const char *detail) {
  char msg[512];
  const char *code = sy_errno_name(err);
  sy_errno_message(msg, sizeof msg, err, syscall, detail);

  napi_value js_code, js_msg, js_syscall, js_errno, error;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &js_syscall) != napi_ok ||
      napi_create_int32(env, -err, &js_errno) != napi_ok ||
      napi_create_error(env, js_code, js_msg, &error) != napi_ok ||
      napi_set_named_property(env, error, "syscall", js_syscall) != napi_ok ||
      napi_set_named_property(env, error, "errno", js_errno) != napi_ok ||
      napi_throw(env, error) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, code, msg);
  }
  return NULL;
}

/* Throws `new TypeError/RangeError` with a Node-style code. Returns false. */
static inline bool sy_throw_arg(napi_env env, bool range, const char *name, const char *expected) {
  char msg[256];
  snprintf(msg, sizeof msg, "The \"%s\" argument must be %s", name, expected);
  if (range)
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  else
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return false;
}

/* Reads an integer argument in [min, max]; throws TypeError/RangeError otherwise. */
static inline bool sy_get_int(napi_env env, napi_value value, const char *name, int64_t min, int64_t max,
                              int64_t *out) {
  napi_valuetype type;
  double d;
  char expected[96];
  snprintf(expected, sizeof expected, "an integer >= %lld and <= %lld", (long long)min, (long long)max);
  if (!sy_napi_ok(env, napi_typeof(env, value, &type), "napi_typeof")) return false;
  if (type != napi_number) return sy_throw_arg(env, false, name, "of type number");
  if (!sy_napi_ok(env, napi_get_value_double(env, value, &d), "napi_get_value_double")) return false;
  if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d)
    return sy_throw_arg(env, true, name, expected);
  *out = (int64_t)d;
  return true;
}

/* File descriptors: any int32, so the kernel (not us) answers EBADF for -1. */
static inline bool sy_get_fd(napi_env env, napi_value value, const char *name, int *out) {
  int64_t v;
  if (!sy_get_int(env, value, name, INT32_MIN, INT32_MAX, &v)) return false;
  *out = (int)v;
  return true;
}

/* Fetches exactly `want` arguments (missing ones are undefined). */
#define SY_ARGS(env, info, want, argv)                                          \
  napi_value argv[want];                                                       \
  do {                                                                         \
    size_t sy_argc_ = (want);                                                  \
    NAPI_CALL(env, napi_get_cb_info((env), (info), &sy_argc_, argv, NULL, NULL)); \
  } while (0)

#endif
