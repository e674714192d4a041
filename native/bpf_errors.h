/*
 * Errors of the BPF part of the addon (bpf_errors.c): libbpf's messages
 * captured per call, and the JS Errors thrown for failing calls and records.
 */
#ifndef SWITCHYARD_BPF_ERRORS_H
#define SWITCHYARD_BPF_ERRORS_H

#include <stddef.h>
#include <node_api.h>

/* The tail of what libbpf printed during one call (load, attach). */
#define LOG_CAP 3072
struct log_capture {
  size_t len;
  char text[LOG_CAP];
};

/* Installs the print callback that feeds captures; once, at addon init. */
void bpf_log_install(void);

/* Captures libbpf's messages of this thread into `cap` until called with NULL (then discards). */
void bpf_log_capture(struct log_capture *cap);

/*
 * Like sy_throw_errno, plus the captured libbpf log appended to the message
 * (and as `log`) and, when index >= 0, the failing record as `index`. Returns NULL.
 */
napi_value throw_bpf(napi_env env, int err, const char *syscall, const char *detail,
                     const struct log_capture *cap, long index);

/* RangeError for a malformed record of a batch, with `index`. Returns NULL. */
napi_value throw_record(napi_env env, const char *what, size_t index, const char *why);

#endif
