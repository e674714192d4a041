/*
 * BPF steering: load steering.bpf.o, attach its sk_lookup program to a network
 * namespace and edit its maps (layouts in steering.h).
 *
 * steeringLoad(objPath, inherited?) returns a plain object that owns one
 * bpf_object; its methods (attach, detach, setSocket, deleteSocket, setPorts,
 * deletePorts, readCounters, readPorts, linkInfo, exportFds, release, close)
 * find their state through napi_wrap; the map edits are in bpf_maps.c,
 * libbpf's messages and errors in bpf_errors.c, the hand-over checks and
 * exportFds() in bpf_handover.c. Nothing is pinned: the
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
#include "bpf_handover.h"
#include "bpf_steering.h"
#include "napi_util.h"
#include "steering.h"

#define DEFAULT_NETNS "/proc/self/ns/net"
#define PROG_NAME "steer"
/* ---- state ---------------------------------------------------------------- */

static bool is_attached(const struct steering *st) {
  return st->link != NULL || st->link_fd >= 0;
}

/* The fd of the link, made here or adopted; -1 when detached. */
int steering_link_fd(const struct steering *st) {
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
  int rc = bpf_obj_get_info_by_fd(steering_link_fd(st), &li, &len);
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

/* ---- steeringLoad ------------------------------------------------------------ */

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
      SY_FN("exportFds", steering_export_fds),
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
