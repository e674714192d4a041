/*
 * BPF steering: load steering.bpf.o, attach its sk_lookup program to a network
 * namespace and edit its maps (layouts in steering.h).
 *
 * steeringLoad(objPath, inherited?) returns a plain object that owns one
 * bpf_object; its methods (attach, detach, setSocket, deleteSocket, setPorts,
 * deletePorts, readCounters, readPorts, linkInfo, exportFds, release, close)
 * find their state through napi_wrap; the map edits are in bpf_maps.c,
 * libbpf's messages and errors in bpf_errors.c. Nothing is pinned: the
 * program, maps and link go away on close(), when the object is collected, or
 * when the process exits, unless another process holds their fds.
 *
 * Hand-over to another process (a new supervisor, or systemd's fd store):
 * exportFds() dups the link and map fds for sending; the receiver's
 * steeringLoad(path, inherited) builds its object on those same maps
 * (bpf_map__reuse_fd) and swaps its program into the running link
 * (bpf_link_update), so the netns is never without steering; release() then
 * lets the old process go without BPF_LINK_DETACH. No state is global; the
 * only static is a thread-local pointer to the log buffer of the call in
 * progress.
 *
 * Every failure throws (napi_util.h): `code` errno name, `syscall` the failing
 * libbpf call, `errno` negative. Nothing aborts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf.h"
#include "bpf_errors.h"
#include "bpf_steering.h"
#include "napi_util.h"
#include "steering.h"

#define DEFAULT_NETNS "/proc/self/ns/net"
#define PROG_NAME "steer"
/*
 * Lowest fd number for the dups made here: never 0-2, which a daemon started
 * with its stdio closed would otherwise hand out as a BPF object's fd (libbpf
 * does the same for its own fds).
 */
#define MIN_FD 3

/* The three maps, in the order of the layouts below and of struct inherited. */
enum { MAP_PORTS, MAP_SOCKETS, MAP_COUNTERS, MAP_COUNT };

struct map_spec {
  const char *name;
  enum bpf_map_type type;
  __u32 key_size, value_size, max_entries;
};

/* What steering.h says each map is; an object or an inherited map must match. */
static const struct map_spec map_specs[MAP_COUNT] = {
    [MAP_PORTS] = {"ports", BPF_MAP_TYPE_LPM_TRIE, sizeof(struct steer_key), sizeof(__u32), STEER_PORTS_MAX},
    [MAP_SOCKETS] = {"sockets", BPF_MAP_TYPE_SOCKMAP, sizeof(__u32), sizeof(__u64), STEER_SOCKETS_MAX},
    [MAP_COUNTERS] = {"counters", BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32), sizeof(struct steer_counters),
                      STEER_SOCKETS_MAX},
};

/* Fds another process handed over (steeringLoad's second argument); still the caller's. */
struct inherited {
  int link_fd; /* -1: none, attach() as usual */
  int map_fds[MAP_COUNT];
};

/* ---- state ---------------------------------------------------------------- */

static bool is_attached(const struct steering *st) {
  return st->link != NULL || st->link_fd >= 0;
}

/* The fd of the link, made here or adopted; -1 when detached. */
static int link_fd_of(const struct steering *st) {
  return st->link != NULL ? bpf_link__fd(st->link) : st->link_fd;
}

/* Destroys the link; returns 0 or the positive errno of BPF_LINK_DETACH. */
static int steering_detach(struct steering *st) {
  int err = 0;
  /*
   * BPF_LINK_DETACH first: it detaches the program even if a copy of the
   * link fd survived somewhere (fds are O_CLOEXEC, but not every fork execs;
   * and an adopted link's fd is also held by the process that made it).
   */
  if (st->link != NULL) {
    int rc = bpf_link__detach(st->link);
    if (rc < 0) err = -rc;
    bpf_link__destroy(st->link);
    st->link = NULL;
  }
  if (st->link_fd >= 0) {
    int rc = bpf_link_detach(st->link_fd);
    if (rc < 0) err = -rc;
    close(st->link_fd);
    st->link_fd = -1;
  }
  return err;
}

/*
 * Closes this process's fds of the link, program and maps without detaching:
 * the kernel frees each only when its last fd (or the link, for the program
 * and maps) is gone, so a link whose fd another process holds keeps steering
 * with this program and these maps. Without such a holder the link goes with
 * its last fd, as it would at exit.
 */
static void steering_release(struct steering *st) {
  if (st->link != NULL) bpf_link__destroy(st->link); /* no bpf_link__detach: only closes the fd */
  st->link = NULL;
  if (st->link_fd >= 0) close(st->link_fd);
  st->link_fd = -1;
  if (st->obj != NULL) bpf_object__close(st->obj);
  st->obj = NULL;
  st->prog = NULL;
  st->ports_fd = st->sockets_fd = st->counters_fd = -1;
}

static void steering_close(struct steering *st) {
  steering_detach(st);
  steering_release(st);
}

static void steering_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  struct steering *st = data;
  steering_close(st);
  free(st);
}

/* `this` of a method call and its arguments; throws if closed (unless allow_closed). */
struct steering *get_self(napi_env env, napi_callback_info info, size_t want, napi_value *argv,
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

bool is_undefined(napi_env env, napi_value value, bool *out) {
  napi_valuetype type;
  if (!sy_napi_ok(env, napi_typeof(env, value, &type), "napi_typeof")) return false;
  *out = type == napi_undefined;
  return true;
}

napi_value make_uint(napi_env env, uint32_t v) {
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
  if (is_attached(st)) {
    napi_throw_error(env, "ERR_STEERING_ATTACHED", "steering: already attached (or adopted a link); detach() first");
    return NULL;
  }

  int netns = open(path, O_RDONLY | O_CLOEXEC);
  if (netns < 0) return sy_throw_errno(env, errno, "open", path);

  struct log_capture cap = {0};
  bpf_log_capture(&cap);
  struct bpf_link *link = bpf_program__attach_netns(st->prog, netns);
  int err = errno;
  bpf_log_capture(NULL);
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
  bool had = is_attached(st);
  int err = steering_detach(st);
  if (err != 0) return sy_throw_errno(env, err, "bpf_link_detach", NULL);
  NAPI_CALL(env, napi_get_boolean(env, had, &out));
  return out;
}

/* linkInfo(): {id, progId, netnsIno} of the attached link, or null. */
static napi_value m_link_info(napi_env env, napi_callback_info info) {
  napi_value out;
  struct steering *st = get_self(env, info, 0, NULL, false);
  if (st == NULL) return NULL;
  if (!is_attached(st)) {
    NAPI_CALL(env, napi_get_null(env, &out));
    return out;
  }
  struct bpf_link_info li;
  __u32 len = sizeof li;
  memset(&li, 0, sizeof li);
  int rc = bpf_obj_get_info_by_fd(link_fd_of(st), &li, &len);
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

/* close(): detach and free everything; later calls (except close and release) throw. */
static napi_value m_close(napi_env env, napi_callback_info info) {
  struct steering *st = get_self(env, info, 0, NULL, true);
  if (st == NULL) return NULL;
  steering_close(st);
  return NULL;
}

/* release(): close() without BPF_LINK_DETACH, for a process handing its steering over. */
static napi_value m_release(napi_env env, napi_callback_info info) {
  struct steering *st = get_self(env, info, 0, NULL, true);
  if (st == NULL) return NULL;
  steering_release(st);
  return NULL;
}

static bool set_fd_property(napi_env env, napi_value obj, const char *name, int fd) {
  napi_value v;
  if (fd < 0) {
    if (!sy_napi_ok(env, napi_get_null(env, &v), "napi_get_null")) return false;
  } else if (!sy_napi_ok(env, napi_create_int32(env, fd, &v), "napi_create_int32")) {
    return false;
  }
  return sy_napi_ok(env, napi_set_named_property(env, obj, name, v), "napi_set_named_property");
}

/*
 * exportFds(): {link (null when detached), sockets, ports, counters}, fresh
 * close-on-exec dups that the caller owns (sends over SCM_RIGHTS, then closes).
 */
static napi_value m_export_fds(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"link", "sockets", "ports", "counters"};
  napi_value out;
  struct steering *st = get_self(env, info, 0, NULL, false);
  if (st == NULL) return NULL;
  int src[4] = {link_fd_of(st), st->sockets_fd, st->ports_fd, st->counters_fd};
  int fds[4] = {-1, -1, -1, -1};
  for (int i = 0; i < 4; i++) {
    if (src[i] < 0) continue;
    fds[i] = fcntl(src[i], F_DUPFD_CLOEXEC, MIN_FD);
    if (fds[i] < 0) {
      int err = errno;
      for (int j = 0; j < i; j++)
        if (fds[j] >= 0) close(fds[j]);
      return sy_throw_errno(env, err, "fcntl", names[i]);
    }
  }
  NAPI_CALL_GOTO(env, napi_create_object(env, &out), fail);
  for (int i = 0; i < 4; i++)
    if (!set_fd_property(env, out, names[i], fds[i])) goto fail;
  return out;
fail:
  for (int i = 0; i < 4; i++)
    if (fds[i] >= 0) close(fds[i]);
  return NULL;
}

/* ---- steeringLoad ------------------------------------------------------------ */

/* "lpm_trie key 24 / value 4 / max 262144" */
static void describe_layout(char *buf, size_t size, __u32 type, __u32 key, __u32 value, __u32 max) {
  const char *name = libbpf_bpf_map_type_str((enum bpf_map_type)type);
  if (name != NULL)
    snprintf(buf, size, "%s key %u / value %u / max %u", name, key, value, max);
  else
    snprintf(buf, size, "map type %u key %u / value %u / max %u", type, key, value, max);
}

static bool layout_matches(const struct map_spec *spec, __u32 type, __u32 key, __u32 value, __u32 max) {
  return type == (__u32)spec->type && key == spec->key_size && value == spec->value_size && max == spec->max_entries;
}

/* Throws ERR_BPF_OBJECT_MISMATCH: "<what> is <layout>, steering.h says <layout><hint>". Returns false. */
static bool throw_layout_mismatch(napi_env env, const char *what, const struct map_spec *spec, __u32 type, __u32 key,
                                  __u32 value, __u32 max, const char *hint) {
  char have[96], want[96], msg[400];
  describe_layout(have, sizeof have, type, key, value, max);
  describe_layout(want, sizeof want, (__u32)spec->type, spec->key_size, spec->value_size, spec->max_entries);
  snprintf(msg, sizeof msg, "%s is %s, steering.h says %s%s", what, have, want, hint);
  napi_throw_error(env, "ERR_BPF_OBJECT_MISMATCH", msg);
  return false;
}

/* The object's map `spec->name`, checked against steering.h; NULL (thrown) if absent or different. */
static struct bpf_map *find_map(napi_env env, struct bpf_object *obj, const struct map_spec *spec) {
  char what[64];
  struct bpf_map *map = bpf_object__find_map_by_name(obj, spec->name);
  if (map == NULL) {
    snprintf(what, sizeof what, "BPF object has no map \"%s\": not built from this steering.h?", spec->name);
    napi_throw_error(env, "ERR_BPF_OBJECT_MISMATCH", what);
    return NULL;
  }
  snprintf(what, sizeof what, "BPF map \"%s\"", spec->name);
  if (!layout_matches(spec, (__u32)bpf_map__type(map), bpf_map__key_size(map), bpf_map__value_size(map),
                      bpf_map__max_entries(map))) {
    throw_layout_mismatch(env, what, spec, (__u32)bpf_map__type(map), bpf_map__key_size(map),
                          bpf_map__value_size(map), bpf_map__max_entries(map), ": rebuild steering.bpf.o");
    return NULL;
  }
  return map;
}

/*
 * Throws ERR_BPF_OBJECT_MISMATCH unless fd is a BPF object of `kind`, the name
 * of its anon inode ("bpf-map", "bpf_link"). bpf_obj_get_info_by_fd answers
 * for a map, a program and a link alike, each in its own struct, so its
 * answer alone cannot tell them apart: a map whose fields happened to read
 * like a netns link's would pass.
 */
static bool check_fd_kind(napi_env env, int fd, const char *kind, const char *what) {
  char path[32], target[96], msg[256];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n < 0) {
    sy_throw_errno(env, errno, "readlink", path);
    return false;
  }
  target[n] = '\0';
  if (strncmp(target, "anon_inode:", 11) == 0 && strcmp(target + 11, kind) == 0) return true;
  snprintf(msg, sizeof msg, "%s is %s, not a BPF %s", what, target, strcmp(kind, "bpf_link") == 0 ? "link" : "map");
  napi_throw_error(env, "ERR_BPF_OBJECT_MISMATCH", msg);
  return false;
}

/*
 * An inherited map must be what steering.h says, checked here because
 * bpf_map__reuse_fd does not: it takes over whatever layout the fd has, and
 * the verifier does not always object either (the counters PERCPU_ARRAY
 * passed as "ports" loads, and then steers nothing); when it does, its
 * message is far from the cause.
 */
static bool check_inherited_map(napi_env env, const struct map_spec *spec, int fd) {
  char what[64];
  struct bpf_map_info mi;
  __u32 len = sizeof mi;
  memset(&mi, 0, sizeof mi);
  snprintf(what, sizeof what, "inherited map \"%s\" (fd %d)", spec->name, fd);
  int rc = bpf_obj_get_info_by_fd(fd, &mi, &len);
  if (rc < 0) {
    sy_throw_errno(env, -rc, "bpf_obj_get_info_by_fd", what);
    return false;
  }
  if (!check_fd_kind(env, fd, "bpf-map", what)) return false;
  if (!layout_matches(spec, mi.type, mi.key_size, mi.value_size, mi.max_entries))
    return throw_layout_mismatch(env, what, spec, mi.type, mi.key_size, mi.value_size, mi.max_entries,
                                 ": not a map of this steering.h");
  return true;
}

/*
 * Opens, checks and loads the object; with `inh`, on the inherited maps
 * instead of new ones. On failure throws and returns NULL; maps[] gets the
 * object's maps (their fds are valid once loaded).
 */
static struct bpf_object *load_object(napi_env env, const char *path, const struct inherited *inh,
                                      struct log_capture *cap, struct bpf_map **maps) {
  struct bpf_object *obj = bpf_object__open_file(path, NULL);
  if (obj == NULL) {
    int err = errno != 0 ? errno : EINVAL;
    throw_bpf(env, err, "bpf_object__open_file", path, cap, -1);
    return NULL;
  }
  for (int i = 0; i < MAP_COUNT; i++)
    if ((maps[i] = find_map(env, obj, &map_specs[i])) == NULL) goto fail;
  if (bpf_object__find_program_by_name(obj, PROG_NAME) == NULL) {
    napi_throw_error(env, "ERR_BPF_OBJECT_MISMATCH", "BPF object has no program \"" PROG_NAME "\"");
    goto fail;
  }
  if (inh != NULL) {
    for (int i = 0; i < MAP_COUNT; i++)
      if (!check_inherited_map(env, &map_specs[i], inh->map_fds[i])) goto fail;
    /*
     * libbpf keeps its own dup of each fd (the caller's stay the caller's),
     * creates no map for it at load and relocates the program against it.
     * It also renames its bpf_map to the kernel's name for the map, which is
     * why maps[] were looked up before.
     */
    for (int i = 0; i < MAP_COUNT; i++) {
      int rc = bpf_map__reuse_fd(maps[i], inh->map_fds[i]);
      if (rc < 0) {
        throw_bpf(env, -rc, "bpf_map__reuse_fd", map_specs[i].name, cap, -1);
        goto fail;
      }
    }
  }
  int rc = bpf_object__load(obj);
  if (rc < 0) {
    throw_bpf(env, -rc, "bpf_object__load", path, cap, -1);
    goto fail;
  }
  return obj;
fail:
  bpf_object__close(obj);
  return NULL;
}

static bool map_fd(napi_env env, const struct bpf_map *map, const char *name, int *out) {
  int fd = bpf_map__fd(map);
  if (fd < 0) {
    sy_throw_errno(env, -fd, "bpf_map__fd", name);
    return false;
  }
  *out = fd;
  return true;
}

/*
 * Makes the inherited link st's: checks it is an sk_lookup netns link, keeps
 * a dup of its fd, and swaps st's program into it. BPF_LINK_UPDATE replaces
 * the program in one step (the kernel publishes the new one with
 * rcu_assign_pointer), so every lookup in the netns runs either the old or
 * the new program, both on the same maps: none goes unsteered.
 */
static bool adopt_link(napi_env env, struct steering *st, int fd) {
  char what[48], msg[256];
  struct bpf_link_info li;
  __u32 len = sizeof li;
  memset(&li, 0, sizeof li);
  snprintf(what, sizeof what, "inherited link (fd %d)", fd);
  int rc = bpf_obj_get_info_by_fd(fd, &li, &len);
  if (rc < 0) {
    sy_throw_errno(env, -rc, "bpf_obj_get_info_by_fd", what);
    return false;
  }
  if (!check_fd_kind(env, fd, "bpf_link", what)) return false;
  if (li.type != BPF_LINK_TYPE_NETNS || li.netns.attach_type != BPF_SK_LOOKUP) {
    const char *type = libbpf_bpf_link_type_str((enum bpf_link_type)li.type);
    const char *attach = libbpf_bpf_attach_type_str((enum bpf_attach_type)li.netns.attach_type);
    if (li.type == BPF_LINK_TYPE_NETNS)
      snprintf(msg, sizeof msg, "%s is a netns link for %s, not sk_lookup", what, attach != NULL ? attach : "?");
    else
      snprintf(msg, sizeof msg, "%s is a %s link, not an sk_lookup netns link", what, type != NULL ? type : "?");
    napi_throw_error(env, "ERR_BPF_OBJECT_MISMATCH", msg);
    return false;
  }
  int own = fcntl(fd, F_DUPFD_CLOEXEC, MIN_FD);
  if (own < 0) return (sy_throw_errno(env, errno, "fcntl", "F_DUPFD_CLOEXEC (link)"), false);
  rc = bpf_link_update(own, bpf_program__fd(st->prog), NULL);
  if (rc < 0) {
    close(own);
    /* ENOLINK: the link was detached (its netns gone, or someone's detach) */
    sy_throw_errno(env, -rc, "bpf_link_update", what);
    return false;
  }
  st->link_fd = own;
  return true;
}

/* Reads one fd property of `inherited`; an optional one may be undefined or null (then -1). */
static bool get_fd_property(napi_env env, napi_value obj, const char *name, bool optional, int *out) {
  char what[32];
  napi_value v;
  napi_valuetype type;
  int64_t fd;
  snprintf(what, sizeof what, "inherited.%s", name);
  if (!sy_napi_ok(env, napi_get_named_property(env, obj, name, &v), "napi_get_named_property")) return false;
  if (!sy_napi_ok(env, napi_typeof(env, v, &type), "napi_typeof")) return false;
  if (optional && (type == napi_undefined || type == napi_null)) {
    *out = -1;
    return true;
  }
  if (!sy_get_int(env, v, what, 0, INT32_MAX, &fd)) return false;
  *out = (int)fd;
  return true;
}

/* steeringLoad's second argument: undefined/null (*given false) or {link?, sockets, ports, counters}. */
static bool get_inherited(napi_env env, napi_value value, struct inherited *out, bool *given) {
  napi_valuetype type;
  *given = false;
  if (!sy_napi_ok(env, napi_typeof(env, value, &type), "napi_typeof")) return false;
  if (type == napi_undefined || type == napi_null) return true;
  if (type != napi_object) return sy_throw_arg(env, false, "inherited", "an object of fds");
  if (!get_fd_property(env, value, "link", true, &out->link_fd)) return false;
  for (int i = 0; i < MAP_COUNT; i++)
    if (!get_fd_property(env, value, map_specs[i].name, false, &out->map_fds[i])) return false;
  *given = true;
  return true;
}

static napi_value steering_load(napi_env env, napi_callback_info info) {
  char path[PATH_MAX];
  struct steering *st = NULL;
  struct inherited inh;
  struct bpf_map *maps[MAP_COUNT];
  bool inherit;
  napi_value self;
  SY_ARGS(env, info, 2, argv);
  if (!get_string(env, argv[0], "objPath", path, sizeof path)) return NULL;
  if (!get_inherited(env, argv[1], &inh, &inherit)) return NULL;

  struct log_capture *cap = calloc(1, sizeof *cap);
  if (cap == NULL) return sy_throw_errno(env, ENOMEM, "calloc", "log");
  bpf_log_capture(cap);
  struct bpf_object *obj = load_object(env, path, inherit ? &inh : NULL, cap, maps);
  bpf_log_capture(NULL);
  free(cap);
  if (obj == NULL) return NULL;

  st = calloc(1, sizeof *st);
  if (st == NULL) {
    bpf_object__close(obj);
    return sy_throw_errno(env, ENOMEM, "calloc", "steering");
  }
  st->link_fd = -1;
  st->obj = obj;
  st->prog = bpf_object__find_program_by_name(obj, PROG_NAME);
  if (!map_fd(env, maps[MAP_PORTS], "ports", &st->ports_fd) ||
      !map_fd(env, maps[MAP_SOCKETS], "sockets", &st->sockets_fd) ||
      !map_fd(env, maps[MAP_COUNTERS], "counters", &st->counters_fd))
    goto fail;
  st->ncpus = libbpf_num_possible_cpus();
  if (st->ncpus <= 0) {
    sy_throw_errno(env, st->ncpus < 0 ? -st->ncpus : EINVAL, "libbpf_num_possible_cpus", NULL);
    goto fail;
  }
  if (inherit && inh.link_fd >= 0 && !adopt_link(env, st, inh.link_fd)) goto fail;

  NAPI_CALL_GOTO(env, napi_create_object(env, &self), fail);
  NAPI_CALL_GOTO(env, napi_wrap(env, self, st, steering_finalize, NULL, NULL), fail);
  /* From here on the finalizer owns st. */
  napi_property_descriptor methods[] = {
      SY_FN("attach", m_attach),
      SY_FN("detach", m_detach),
      SY_FN("setSocket", steering_set_socket),
      SY_FN("deleteSocket", steering_delete_socket),
      SY_FN("setPorts", steering_set_ports),
      SY_FN("deletePorts", steering_delete_ports),
      SY_FN("readCounters", steering_read_counters),
      SY_FN("readPorts", steering_read_ports),
      SY_FN("linkInfo", m_link_info),
      SY_FN("exportFds", m_export_fds),
      SY_FN("release", m_release),
      SY_FN("close", m_close),
  };
  NAPI_CALL(env, napi_define_properties(env, self, sizeof methods / sizeof methods[0], methods));
  return self;

fail:
  /*
   * Release, never detach: an adopted link steers with the new program once
   * bpf_link_update succeeded, and the link is still the caller's, who may
   * hand it to a retry.
   */
  steering_release(st);
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
  bpf_log_install();

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
