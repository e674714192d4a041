/*
 * Hand-over of the BPF state to and from another process (bpf.c uses it): the
 * maps' layouts that inherited fds are checked against, the checks, the
 * adoption of a running link, and exportFds(). Internal to the addon.
 */
#ifndef SWITCHYARD_BPF_HANDOVER_H
#define SWITCHYARD_BPF_HANDOVER_H

#include <stdbool.h>
#include <bpf/libbpf.h>
#include <node_api.h>

#include "bpf_steering.h"

/*
 * Lowest fd number for the dups made here: never 0-2, which a daemon started
 * with its stdio closed would otherwise hand out as a BPF object's fd (libbpf
 * does the same for its own fds).
 */
#define MIN_FD 3

/* The three maps, in the order of map_specs and of struct inherited. */
enum { MAP_PORTS, MAP_SOCKETS, MAP_COUNTERS, MAP_COUNT };

struct map_spec {
  const char *name;
  enum bpf_map_type type;
  __u32 key_size, value_size, max_entries;
};

/* Fds another process handed over (steeringLoad's second argument); still the caller's. */
struct inherited {
  int link_fd; /* -1: none, attach() as usual */
  int map_fds[MAP_COUNT];
};

/* What steering.h says each map is; an object or an inherited map must match (bpf_handover.c). */
extern const struct map_spec map_specs[MAP_COUNT];

/* The fd of st's link, attached by it or adopted; -1 when detached (bpf.c). */
int steering_link_fd(const struct steering *st);
/* The object's map `spec->name`, checked against steering.h; NULL (thrown) if absent or different. */
struct bpf_map *find_map(napi_env env, struct bpf_object *obj, const struct map_spec *spec);
/* Throws ERR_BPF_OBJECT_MISMATCH (false) unless fd is a map of spec's layout. */
bool check_inherited_map(napi_env env, const struct map_spec *spec, int fd);
/* Makes the inherited link st's and swaps st's program into it; false (thrown) otherwise. */
bool adopt_link(napi_env env, struct steering *st, int fd);
/* steeringLoad's second argument: undefined/null (*given false) or {link?, sockets, ports, counters}. */
bool get_inherited(napi_env env, napi_value value, struct inherited *out, bool *given);
/* exportFds(): the method. */
napi_value steering_export_fds(napi_env env, napi_callback_info info);

#endif
