/*
 * The BPF state handed to or taken from another process (see bpf.c's header):
 * what the maps must be, the checks of inherited fds against it (libbpf's
 * bpf_map__reuse_fd checks nothing), the adoption of a running link, and
 * exportFds(). Every failure throws (napi_util.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf_handover.h"
#include "napi_util.h"
#include "steering.h"

/* What steering.h says each map is; an object or an inherited map must match. */
const struct map_spec map_specs[MAP_COUNT] = {
    [MAP_PORTS] = {"ports", BPF_MAP_TYPE_LPM_TRIE, sizeof(struct steer_key), sizeof(__u32), STEER_PORTS_MAX},
    [MAP_SOCKETS] = {"sockets", BPF_MAP_TYPE_SOCKMAP, sizeof(__u32), sizeof(__u64), STEER_SOCKETS_MAX},
    [MAP_COUNTERS] = {"counters", BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32), sizeof(struct steer_counters),
                      STEER_SOCKETS_MAX},
};

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
struct bpf_map *find_map(napi_env env, struct bpf_object *obj, const struct map_spec *spec) {
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
bool check_inherited_map(napi_env env, const struct map_spec *spec, int fd) {
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
 * Makes the inherited link st's: checks it is an sk_lookup netns link, keeps
 * a dup of its fd, and swaps st's program into it. BPF_LINK_UPDATE replaces
 * the program in one step (the kernel publishes the new one with
 * rcu_assign_pointer), so every lookup in the netns runs either the old or
 * the new program, both on the same maps: none goes unsteered.
 */
bool adopt_link(napi_env env, struct steering *st, int fd) {
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
bool get_inherited(napi_env env, napi_value value, struct inherited *out, bool *given) {
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
napi_value steering_export_fds(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"link", "sockets", "ports", "counters"};
  napi_value out;
  struct steering *st = get_self(env, info, 0, NULL, false);
  if (st == NULL) return NULL;
  int src[4] = {steering_link_fd(st), st->sockets_fd, st->ports_fd, st->counters_fd};
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

