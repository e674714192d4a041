/*
 * The state behind a Steering object (bpf.c) and the methods that edit its
 * maps (bpf_maps.c). Internal to the addon.
 */
#ifndef SWITCHYARD_BPF_STEERING_H
#define SWITCHYARD_BPF_STEERING_H

#include <stdbool.h>
#include <stdint.h>
#include <bpf/libbpf.h>
#include <node_api.h>

struct steering {
  struct bpf_object *obj; /* NULL once closed (or released) */
  struct bpf_program *prog;
  struct bpf_link *link; /* the link attach() made; NULL while detached or adopted */
  /*
   * A link adopted from another process (steeringLoad with inherited.link):
   * our own dup of its fd, -1 if none. libbpf cannot wrap a bare link fd in a
   * struct bpf_link (only a pinned path), so it is kept apart; at most one of
   * link and link_fd is set.
   */
  int link_fd;
  int ports_fd;
  int sockets_fd;
  int counters_fd;
  int ncpus;
};

/* `this` of a method call and its arguments; throws and returns NULL if closed (unless allow_closed). */
struct steering *get_self(napi_env env, napi_callback_info info, size_t want, napi_value *argv, bool allow_closed);
bool is_undefined(napi_env env, napi_value value, bool *out);
napi_value make_uint(napi_env env, uint32_t v);

/* Methods (see bpf_maps.c). */
napi_value steering_set_socket(napi_env env, napi_callback_info info);
napi_value steering_delete_socket(napi_env env, napi_callback_info info);
napi_value steering_set_ports(napi_env env, napi_callback_info info);
napi_value steering_delete_ports(napi_env env, napi_callback_info info);
napi_value steering_read_counters(napi_env env, napi_callback_info info);
napi_value steering_read_ports(napi_env env, napi_callback_info info);

#endif
