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
  struct bpf_object *obj; /* NULL once closed */
  struct bpf_program *prog;
  struct bpf_link *link; /* NULL while detached */
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

#endif
