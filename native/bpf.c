/*
 * BPF steering: load steering.bpf.o, attach its sk_lookup program to a network
 * namespace and edit its maps (layouts in steering.h).
 *
 * steeringLoad(objPath) returns a plain object that owns one bpf_object; its
 * methods (attach, detach, setSocket, deleteSocket, setPorts, deletePorts,
 * readCounters, linkInfo, close) find their state through napi_wrap. Nothing is
 * pinned: the program, maps and link go away on close(), when the object is
 * collected, or when the process exits. No state is global; the only static
 * is a thread-local pointer to the log buffer of the call in progress.
 *
 * Every failure throws (napi_util.h): `code` errno name, `syscall` the failing
 * libbpf call, `errno` negative. Nothing aborts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf.h"
#include "napi_util.h"
#include "steering.h"

#define DEFAULT_NETNS "/proc/self/ns/net"
#define PROG_NAME "steer"
/* Counter slots fetched per BPF_MAP_LOOKUP_BATCH call. */
#define COUNTER_CHUNK 256

/* ---- libbpf messages ------------------------------------------------------ */

/* The tail of what libbpf printed during one call (load, attach). */
#define LOG_CAP 3072
struct log_capture {
  size_t len;
  char text[LOG_CAP];
};

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

/*
 * Like sy_throw_errno, plus the captured libbpf log appended to the message
 * (and as `log`) and, when index >= 0, the failing record as `index`.
 */
static napi_value throw_bpf(napi_env env, int err, const char *syscall, const char *detail,
                            const struct log_capture *cap, long index) {
  char textbuf[64];
  char head[512];
  const char *code = sy_errno_name(err);
  const char *text = sy_errno_text(err, textbuf, sizeof textbuf);
  if (detail != NULL && detail[0] != '\0')
    snprintf(head, sizeof head, "%s %s: %s", syscall, detail, text);
  else
    snprintf(head, sizeof head, "%s: %s", syscall, text);

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

/* RangeError for a malformed record of a batch, with `index`. Returns NULL. */
static napi_value throw_record(napi_env env, const char *what, size_t index, const char *why) {
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

/* ---- state ---------------------------------------------------------------- */

struct steering {
  struct bpf_object *obj; /* NULL once closed */
  struct bpf_program *prog;
  struct bpf_link *link; /* NULL while detached */
  int ports_fd;
  int sockets_fd;
  int counters_fd;
  int ncpus;
};

/* Destroys the link; returns 0 or the positive errno of BPF_LINK_DETACH. */
static int steering_detach(struct steering *st) {
  int err = 0;
  if (st->link == NULL) return 0;
  /*
   * BPF_LINK_DETACH first: it detaches the program even if a copy of the
   * link fd survived somewhere (fds are O_CLOEXEC, but not every fork execs).
   */
  int rc = bpf_link__detach(st->link);
  if (rc < 0) err = -rc;
  bpf_link__destroy(st->link);
  st->link = NULL;
  return err;
}

static void steering_close(struct steering *st) {
  steering_detach(st);
  if (st->obj != NULL) bpf_object__close(st->obj);
  st->obj = NULL;
  st->prog = NULL;
  st->ports_fd = st->sockets_fd = st->counters_fd = -1;
}

static void steering_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct steering *st = data;
  steering_close(st);
  free(st);
}

/* `this` of a method call and its arguments; throws if closed (unless allow_closed). */
static struct steering *get_self(napi_env env, napi_callback_info info, size_t want, napi_value *argv,
                                 bool allow_closed) {
  size_t argc = want;
  napi_value self;
  void *data = NULL;
  if (!sy_napi_ok(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL), "napi_get_cb_info")) return NULL;
  if (!sy_napi_ok(env, napi_unwrap(env, self, &data), "napi_unwrap")) return NULL;
  struct steering *st = data;
  if (st->obj == NULL && !allow_closed) {
    napi_throw_error(env, "ERR_STEERING_CLOSED", "steering: already closed");
    return NULL;
  }
  return st;
}

static bool get_string(napi_env env, napi_value value, const char *name, char *buf, size_t size) {
  napi_valuetype type;
  size_t len;
  if (!sy_napi_ok(env, napi_typeof(env, value, &type), "napi_typeof")) return false;
  if (type != napi_string) return sy_throw_arg(env, false, name, "of type string");
  if (!sy_napi_ok(env, napi_get_value_string_utf8(env, value, buf, size, &len), "napi_get_value_string_utf8"))
    return false;
  if (len + 1 >= size) return sy_throw_arg(env, true, name, "a shorter string");
  if (strlen(buf) != len) return sy_throw_arg(env, false, name, "a string without NUL bytes");
  return true;
}

static bool is_undefined(napi_env env, napi_value value, bool *out) {
  napi_valuetype type;
  if (!sy_napi_ok(env, napi_typeof(env, value, &type), "napi_typeof")) return false;
  *out = type == napi_undefined;
  return true;
}

static bool get_buffer(napi_env env, napi_value value, const char *name, size_t record, const uint8_t **data,
                       size_t *len) {
  bool is_buf = false;
  void *ptr = NULL;
  if (!sy_napi_ok(env, napi_is_buffer(env, value, &is_buf), "napi_is_buffer")) return false;
  if (!is_buf) return sy_throw_arg(env, false, name, "a Buffer");
  if (!sy_napi_ok(env, napi_get_buffer_info(env, value, &ptr, len), "napi_get_buffer_info")) return false;
  if (*len % record != 0) {
    char expected[64];
    snprintf(expected, sizeof expected, "a Buffer whose length is a multiple of %zu", record);
    return sy_throw_arg(env, true, name, expected);
  }
  *data = ptr;
  return true;
}

/* NULL if the key is well-formed, else why not. */
static const char *check_key(const struct steer_key *k) {
  unsigned max_addr_bits;
  if (k->family == STEER_FAMILY_V4)
    max_addr_bits = 32;
  else if (k->family == STEER_FAMILY_V6)
    max_addr_bits = 128;
  else
    return "family must be 4 or 6";
  if (k->pad != 0) return "pad must be 0";
  if (k->prefixlen < STEER_KEY_FIXED_BITS || k->prefixlen > STEER_KEY_FIXED_BITS + max_addr_bits)
    return k->family == STEER_FAMILY_V4 ? "prefixlen must be 32-64 for family 4" : "prefixlen must be 32-160 for family 6";
  if (k->family == STEER_FAMILY_V4)
    for (int i = 4; i < 16; i++)
      if (k->addr[i] != 0) return "addr[4..15] must be 0 for family 4";
  return NULL;
}

static napi_value make_uint(napi_env env, uint32_t v) {
  napi_value out;
  NAPI_CALL(env, napi_create_uint32(env, v, &out));
  return out;
}

/* ---- methods ---------------------------------------------------------------- */

/* attach(netnsPath = "/proc/self/ns/net"): BPF link from the program to that netns. */
static napi_value m_attach(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char path[PATH_MAX] = DEFAULT_NETNS;
  bool undef;
  struct steering *st = get_self(env, info, 1, argv, false);
  if (st == NULL) return NULL;
  if (!is_undefined(env, argv[0], &undef)) return NULL;
  if (!undef && !get_string(env, argv[0], "netnsPath", path, sizeof path)) return NULL;
  if (st->link != NULL) {
    napi_throw_error(env, "ERR_STEERING_ATTACHED", "steering: already attached; detach() first");
    return NULL;
  }

  int netns = open(path, O_RDONLY | O_CLOEXEC);
  if (netns < 0) return sy_throw_errno(env, errno, "open", path);

  struct log_capture cap = {0};
  log_current = &cap;
  struct bpf_link *link = bpf_program__attach_netns(st->prog, netns);
  int err = errno;
  log_current = NULL;
  close(netns);
  if (link == NULL) return throw_bpf(env, err != 0 ? err : EINVAL, "bpf_link_create", path, &cap, -1);
  st->link = link;
  return NULL;
}

/* detach(): true if a link was destroyed, false if none was attached. */
static napi_value m_detach(napi_env env, napi_callback_info info) {
  napi_value out;
  struct steering *st = get_self(env, info, 0, NULL, false);
  if (st == NULL) return NULL;
  bool had = st->link != NULL;
  int err = steering_detach(st);
  if (err != 0) return sy_throw_errno(env, err, "bpf_link_detach", NULL);
  NAPI_CALL(env, napi_get_boolean(env, had, &out));
  return out;
}

/* setSocket(slot, fd): sockets[slot] = the listening socket fd (BPF_ANY). */
static napi_value m_set_socket(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t slot;
  int fd;
  struct steering *st = get_self(env, info, 2, argv, false);
  if (st == NULL) return NULL;
  if (!sy_get_int(env, argv[0], "slot", 0, STEER_SOCKETS_MAX - 1, &slot)) return NULL;
  if (!sy_get_fd(env, argv[1], "fd", &fd)) return NULL;
  __u32 key = (__u32)slot;
  __u64 value = (__u64)(unsigned)fd;
  int rc = bpf_map_update_elem(st->sockets_fd, &key, &value, BPF_ANY);
  if (rc < 0) {
    char detail[64];
    snprintf(detail, sizeof detail, "sockets[%u] = fd %d", key, fd);
    return sy_throw_errno(env, -rc, "bpf_map_update_elem", detail);
  }
  return NULL;
}

/* deleteSocket(slot): true if removed, false if the slot was already empty. */
static napi_value m_delete_socket(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  int64_t slot;
  struct steering *st = get_self(env, info, 1, argv, false);
  if (st == NULL) return NULL;
  if (!sy_get_int(env, argv[0], "slot", 0, STEER_SOCKETS_MAX - 1, &slot)) return NULL;
  __u32 key = (__u32)slot;
  int rc = bpf_map_delete_elem(st->sockets_fd, &key);
  /*
   * An empty sockmap slot answers EINVAL, not ENOENT (__sock_map_delete);
   * the slot is in range (checked above), so EINVAL means "already empty".
   */
  if (rc == -EINVAL) rc = -ENOENT;
  if (rc < 0 && rc != -ENOENT) {
    char detail[32];
    snprintf(detail, sizeof detail, "sockets[%u]", key);
    return sy_throw_errno(env, -rc, "bpf_map_delete_elem", detail);
  }
  NAPI_CALL(env, napi_get_boolean(env, rc == 0, &out));
  return out;
}

/*
 * setPorts(entries: Buffer of struct steer_port_entry): validates every record,
 * then inserts them in order (BPF_ANY). Not atomic: on a kernel error the
 * records before `index` are in the map.
 */
static napi_value m_set_ports(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  const uint8_t *data;
  size_t len;
  struct steering *st = get_self(env, info, 1, argv, false);
  if (st == NULL) return NULL;
  if (!get_buffer(env, argv[0], "entries", sizeof(struct steer_port_entry), &data, &len)) return NULL;
  size_t count = len / sizeof(struct steer_port_entry);

  for (size_t i = 0; i < count; i++) {
    struct steer_port_entry e;
    memcpy(&e, data + i * sizeof e, sizeof e); /* Buffers need not be aligned */
    const char *why = check_key(&e.key);
    if (why == NULL && e.slot >= STEER_SOCKETS_MAX) why = "slot out of range";
    if (why != NULL) return throw_record(env, "ports", i, why);
  }
  for (size_t i = 0; i < count; i++) {
    struct steer_port_entry e;
    memcpy(&e, data + i * sizeof e, sizeof e);
    int rc = bpf_map_update_elem(st->ports_fd, &e.key, &e.slot, BPF_ANY);
    if (rc < 0) {
      char detail[64];
      snprintf(detail, sizeof detail, "ports record %zu (port %u)", i, e.key.port);
      return throw_bpf(env, -rc, "bpf_map_update_elem", detail, NULL, (long)i);
    }
  }
  return NULL;
}

/* deletePorts(keys: Buffer of struct steer_key): returns how many existed. */
static napi_value m_delete_ports(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  const uint8_t *data;
  size_t len;
  uint32_t deleted = 0;
  struct steering *st = get_self(env, info, 1, argv, false);
  if (st == NULL) return NULL;
  if (!get_buffer(env, argv[0], "keys", sizeof(struct steer_key), &data, &len)) return NULL;
  size_t count = len / sizeof(struct steer_key);

  for (size_t i = 0; i < count; i++) {
    struct steer_key k;
    memcpy(&k, data + i * sizeof k, sizeof k);
    const char *why = check_key(&k);
    if (why != NULL) return throw_record(env, "ports key", i, why);
  }
  for (size_t i = 0; i < count; i++) {
    struct steer_key k;
    memcpy(&k, data + i * sizeof k, sizeof k);
    int rc = bpf_map_delete_elem(st->ports_fd, &k);
    if (rc == 0) {
      deleted++;
    } else if (rc != -ENOENT) { /* already gone is what the caller wanted */
      char detail[64];
      snprintf(detail, sizeof detail, "ports key %zu (port %u)", i, k.port);
      return throw_bpf(env, -rc, "bpf_map_delete_elem", detail, NULL, (long)i);
    }
  }
  return make_uint(env, deleted);
}

/*
 * readCounters(slots = STEER_SOCKETS_MAX): BigUint64Array of slots * 3,
 * [steered, missing_socket, assign_failed] per slot, summed over CPUs.
 */
static napi_value m_read_counters(napi_env env, napi_callback_info info) {
  napi_value argv[1], buffer, out;
  int64_t slots = STEER_SOCKETS_MAX;
  bool undef;
  void *raw = NULL;
  struct steering *st = get_self(env, info, 1, argv, false);
  if (st == NULL) return NULL;
  if (!is_undefined(env, argv[0], &undef)) return NULL;
  if (!undef && !sy_get_int(env, argv[0], "slots", 0, STEER_SOCKETS_MAX, &slots)) return NULL;

  size_t total = (size_t)slots * STEER_COUNTER_FIELDS;
  NAPI_CALL(env, napi_create_arraybuffer(env, total * sizeof(__u64), &raw, &buffer));
  __u64 *sum = raw;
  memset(sum, 0, total * sizeof(__u64));

  __u32 *keys = malloc(COUNTER_CHUNK * sizeof(__u32));
  struct steer_counters *values = malloc((size_t)COUNTER_CHUNK * (size_t)st->ncpus * sizeof(struct steer_counters));
  if (keys == NULL || values == NULL) {
    free(keys);
    free(values);
    return sy_throw_errno(env, ENOMEM, "malloc", "counters");
  }
  __u32 in_key = 0, out_key = 0;
  bool first = true;
  size_t done = 0;
  while (done < (size_t)slots) {
    __u32 n = (__u32)((size_t)slots - done < COUNTER_CHUNK ? (size_t)slots - done : COUNTER_CHUNK);
    int rc = bpf_map_lookup_batch(st->counters_fd, first ? NULL : &in_key, &out_key, keys, values, &n, NULL);
    if (rc < 0 && rc != -ENOENT) { /* ENOENT: the end of the map */
      free(keys);
      free(values);
      return sy_throw_errno(env, -rc, "bpf_map_lookup_batch", "counters");
    }
    for (__u32 i = 0; i < n; i++) {
      if (keys[i] >= (__u32)slots) continue;
      __u64 *dst = sum + (size_t)keys[i] * STEER_COUNTER_FIELDS;
      for (int c = 0; c < st->ncpus; c++) {
        const struct steer_counters *v = &values[(size_t)i * (size_t)st->ncpus + (size_t)c];
        dst[0] += v->steered;
        dst[1] += v->missing_socket;
        dst[2] += v->assign_failed;
      }
    }
    done += n;
    if (rc == -ENOENT || n == 0) break;
    in_key = out_key;
    first = false;
  }
  free(keys);
  free(values);
  NAPI_CALL(env, napi_create_typedarray(env, napi_biguint64_array, total, buffer, 0, &out));
  return out;
}

/* linkInfo(): {id, progId, netnsIno} of the attached link, or null. */
static napi_value m_link_info(napi_env env, napi_callback_info info) {
  napi_value out;
  struct steering *st = get_self(env, info, 0, NULL, false);
  if (st == NULL) return NULL;
  if (st->link == NULL) {
    NAPI_CALL(env, napi_get_null(env, &out));
    return out;
  }
  struct bpf_link_info li;
  __u32 len = sizeof li;
  memset(&li, 0, sizeof li);
  int rc = bpf_obj_get_info_by_fd(bpf_link__fd(st->link), &li, &len);
  if (rc < 0) return sy_throw_errno(env, -rc, "bpf_obj_get_info_by_fd", "link");
  napi_value id = make_uint(env, li.id);
  if (id == NULL) return NULL;
  napi_value prog = make_uint(env, li.prog_id);
  if (prog == NULL) return NULL;
  napi_value ino = make_uint(env, li.netns.netns_ino);
  if (ino == NULL) return NULL;
  NAPI_CALL(env, napi_create_object(env, &out));
  NAPI_CALL(env, napi_set_named_property(env, out, "id", id));
  NAPI_CALL(env, napi_set_named_property(env, out, "progId", prog));
  NAPI_CALL(env, napi_set_named_property(env, out, "netnsIno", ino));
  return out;
}

/* close(): detach and free everything; later calls (except close) throw. */
static napi_value m_close(napi_env env, napi_callback_info info) {
  struct steering *st = get_self(env, info, 0, NULL, true);
  if (st == NULL) return NULL;
  steering_close(st);
  return NULL;
}

/* ---- steeringLoad ------------------------------------------------------------ */

static bool check_map(napi_env env, struct bpf_object *obj, const char *name, __u32 key_size, __u32 value_size,
                      __u32 max_entries) {
  char msg[256];
  struct bpf_map *map = bpf_object__find_map_by_name(obj, name);
  if (map == NULL) {
    snprintf(msg, sizeof msg, "BPF object has no map \"%s\": not built from this steering.h?", name);
  } else if (bpf_map__key_size(map) != key_size || bpf_map__value_size(map) != value_size ||
             bpf_map__max_entries(map) != max_entries) {
    snprintf(msg, sizeof msg,
             "BPF map \"%s\" is key %u / value %u / max %u bytes, steering.h says %u / %u / %u: rebuild steering.bpf.o",
             name, bpf_map__key_size(map), bpf_map__value_size(map), bpf_map__max_entries(map), key_size, value_size,
             max_entries);
  } else {
    return true;
  }
  napi_throw_error(env, "ERR_BPF_OBJECT_MISMATCH", msg);
  return false;
}

static bool map_fd(napi_env env, struct bpf_object *obj, const char *name, int *out) {
  int fd = bpf_object__find_map_fd_by_name(obj, name);
  if (fd < 0) {
    sy_throw_errno(env, -fd, "bpf_object__find_map_fd_by_name", name);
    return false;
  }
  *out = fd;
  return true;
}

/* Opens, checks and loads the object; on failure throws and returns NULL. */
static struct bpf_object *load_object(napi_env env, const char *path, struct log_capture *cap) {
  struct bpf_object *obj = bpf_object__open_file(path, NULL);
  if (obj == NULL) {
    int err = errno != 0 ? errno : EINVAL;
    throw_bpf(env, err, "bpf_object__open_file", path, cap, -1);
    return NULL;
  }
  if (!check_map(env, obj, "ports", sizeof(struct steer_key), sizeof(__u32), STEER_PORTS_MAX) ||
      !check_map(env, obj, "sockets", sizeof(__u32), sizeof(__u64), STEER_SOCKETS_MAX) ||
      !check_map(env, obj, "counters", sizeof(__u32), sizeof(struct steer_counters), STEER_SOCKETS_MAX)) {
    bpf_object__close(obj);
    return NULL;
  }
  if (bpf_object__find_program_by_name(obj, PROG_NAME) == NULL) {
    bpf_object__close(obj);
    napi_throw_error(env, "ERR_BPF_OBJECT_MISMATCH", "BPF object has no program \"" PROG_NAME "\"");
    return NULL;
  }
  int rc = bpf_object__load(obj);
  if (rc < 0) {
    bpf_object__close(obj);
    throw_bpf(env, -rc, "bpf_object__load", path, cap, -1);
    return NULL;
  }
  return obj;
}

static napi_value steering_load(napi_env env, napi_callback_info info) {
  char path[PATH_MAX];
  struct steering *st = NULL;
  napi_value self;
  SY_ARGS(env, info, 1, argv);
  if (!get_string(env, argv[0], "objPath", path, sizeof path)) return NULL;

  struct log_capture *cap = calloc(1, sizeof *cap);
  if (cap == NULL) return sy_throw_errno(env, ENOMEM, "calloc", "log");
  log_current = cap;
  struct bpf_object *obj = load_object(env, path, cap);
  log_current = NULL;
  free(cap);
  if (obj == NULL) return NULL;

  st = calloc(1, sizeof *st);
  if (st == NULL) {
    bpf_object__close(obj);
    return sy_throw_errno(env, ENOMEM, "calloc", "steering");
  }
  st->obj = obj;
  st->prog = bpf_object__find_program_by_name(obj, PROG_NAME);
  if (!map_fd(env, obj, "ports", &st->ports_fd) || !map_fd(env, obj, "sockets", &st->sockets_fd) ||
      !map_fd(env, obj, "counters", &st->counters_fd))
    goto fail;
  st->ncpus = libbpf_num_possible_cpus();
  if (st->ncpus <= 0) {
    sy_throw_errno(env, st->ncpus < 0 ? -st->ncpus : EINVAL, "libbpf_num_possible_cpus", NULL);
    goto fail;
  }

  NAPI_CALL_GOTO(env, napi_create_object(env, &self), fail);
  NAPI_CALL_GOTO(env, napi_wrap(env, self, st, steering_finalize, NULL, NULL), fail);
  /* From here on the finalizer owns st. */
  napi_property_descriptor methods[] = {
      SY_FN("attach", m_attach),
      SY_FN("detach", m_detach),
      SY_FN("setSocket", m_set_socket),
      SY_FN("deleteSocket", m_delete_socket),
      SY_FN("setPorts", m_set_ports),
      SY_FN("deletePorts", m_delete_ports),
      SY_FN("readCounters", m_read_counters),
      SY_FN("linkInfo", m_link_info),
      SY_FN("close", m_close),
  };
  NAPI_CALL(env, napi_define_properties(env, self, sizeof methods / sizeof methods[0], methods));
  return self;

fail:
  steering_close(st);
  free(st);
  return NULL;
}

/* ---- registration ------------------------------------------------------------ */

static napi_status set_uint(napi_env env, napi_value exports, const char *name, uint32_t v) {
  napi_value value;
  napi_status status = napi_create_uint32(env, v, &value);
  if (status != napi_ok) return status;
  return napi_set_named_property(env, exports, name, value);
}

napi_status switchyard_init_bpf(napi_env env, napi_value exports) {
  /* Process-wide, but this addon is libbpf's only user: no stderr noise. */
  libbpf_set_print(log_print);

  napi_property_descriptor fns[] = {
      SY_FN("steeringLoad", steering_load),
  };
  NAPI_CALL_STATUS(env, napi_define_properties(env, exports, sizeof fns / sizeof fns[0], fns));
  NAPI_CALL_STATUS(env, set_uint(env, exports, "sizeofSteerKey", sizeof(struct steer_key)));
  NAPI_CALL_STATUS(env, set_uint(env, exports, "sizeofSteerPortEntry", sizeof(struct steer_port_entry)));
  NAPI_CALL_STATUS(env, set_uint(env, exports, "steerSocketsMax", STEER_SOCKETS_MAX));
  NAPI_CALL_STATUS(env, set_uint(env, exports, "steerPortsMax", STEER_PORTS_MAX));
  NAPI_CALL_STATUS(env, set_uint(env, exports, "steerCounterFields", STEER_COUNTER_FIELDS));
  return napi_ok;
}
