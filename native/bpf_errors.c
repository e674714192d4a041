/*
 * Errors of the BPF part of the addon: what libbpf prints during a call is
 * captured (not written to stderr) and ends up in the JS Error thrown for it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "bpf_errors.h"
#include "napi_util.h"

/* Set only for the duration of a call that may print; NULL: discard. */
static _Thread_local struct log_capture *log_current;

/*
 * libbpf's print callback. Installed once, it replaces the default stderr
 * printer: warnings (the verifier log on a failed load) go into the capture
 * of the call in progress and end up in the thrown error; debug is dropped.
 */
static int log_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
  struct log_capture *cap = log_current;
  char *line = NULL;
  if (cap == NULL || level == LIBBPF_DEBUG) return 0;
  int n = vasprintf(&line, fmt, ap);
  if (n <= 0) return 0;
  size_t add = (size_t)n;
  const char *src = line;
  if (add > LOG_CAP - 1) { /* keep the end: that is where the verifier says why */
    src += add - (LOG_CAP - 1);
    add = LOG_CAP - 1;
  }
  if (cap->len + add > LOG_CAP - 1) {
    size_t drop = cap->len + add - (LOG_CAP - 1);
    memmove(cap->text, cap->text + drop, cap->len - drop);
    cap->len -= drop;
  }
  memcpy(cap->text + cap->len, src, add);
  cap->len += add;
  cap->text[cap->len] = '\0';
  free(line);
  return 0;
}

napi_value throw_bpf(napi_env env, int err, const char *syscall, const char *detail,
                     const struct log_capture *cap, long index) {
  char head[512];
  const char *code = sy_errno_name(err);
  sy_errno_message(head, sizeof head, err, syscall, detail);

  size_t log_len = cap != NULL ? cap->len : 0;
  while (log_len > 0 && (cap->text[log_len - 1] == '\n' || cap->text[log_len - 1] == ' ')) log_len--;
  size_t msg_size = strlen(head) + 2 + log_len;
  char *msg = malloc(msg_size);
  if (msg == NULL) return sy_throw_errno(env, err, syscall, detail);
  if (log_len > 0)
    snprintf(msg, msg_size, "%s\n%.*s", head, (int)log_len, cap->text);
  else
    snprintf(msg, msg_size, "%s", head);

  napi_value js_code, js_msg, js_syscall, js_errno, js_log, js_index, error;
  bool ok = napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code) == napi_ok &&
            napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg) == napi_ok &&
            napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &js_syscall) == napi_ok &&
            napi_create_int32(env, -err, &js_errno) == napi_ok &&
            napi_create_error(env, js_code, js_msg, &error) == napi_ok &&
            napi_set_named_property(env, error, "syscall", js_syscall) == napi_ok &&
            napi_set_named_property(env, error, "errno", js_errno) == napi_ok;
  if (ok && log_len > 0)
    ok = napi_create_string_utf8(env, cap->text, log_len, &js_log) == napi_ok &&
         napi_set_named_property(env, error, "log", js_log) == napi_ok;
  if (ok && index >= 0)
    ok = napi_create_int64(env, index, &js_index) == napi_ok &&
         napi_set_named_property(env, error, "index", js_index) == napi_ok;
  free(msg);
  if (ok && napi_throw(env, error) == napi_ok) return NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) return sy_throw_errno(env, err, syscall, detail);
  return NULL;
}

napi_value throw_record(napi_env env, const char *what, size_t index, const char *why) {
  char msg[256];
  napi_value js_code, js_msg, js_index, error;
  snprintf(msg, sizeof msg, "%s record %zu: %s", what, index, why);
  if (napi_create_string_utf8(env, "ERR_OUT_OF_RANGE", NAPI_AUTO_LENGTH, &js_code) == napi_ok &&
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg) == napi_ok &&
      napi_create_range_error(env, js_code, js_msg, &error) == napi_ok &&
      napi_create_int64(env, (int64_t)index, &js_index) == napi_ok &&
      napi_set_named_property(env, error, "index", js_index) == napi_ok &&
      napi_throw(env, error) == napi_ok)
    return NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return NULL;
}

void bpf_log_capture(struct log_capture *cap) {
  log_current = cap;
}

void bpf_log_install(void) {
  libbpf_set_print(log_print);
}
