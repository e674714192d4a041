/* Module init: each source file registers its own functions. */
#include "bpf.h"
#include "napi_util.h"

NAPI_MODULE_INIT() {
  NAPI_CALL(env, switchyard_init_sockets(env, exports));
  NAPI_CALL(env, switchyard_init_fdpass(env, exports));
  NAPI_CALL(env, switchyard_init_bpf(env, exports));
  NAPI_CALL(env, switchyard_init_lock(env, exports));
  NAPI_CALL(env, switchyard_init_tcp(env, exports));
  NAPI_CALL(env, switchyard_init_counters(env, exports));
  NAPI_CALL(env, switchyard_init_notify(env, exports));
  NAPI_CALL(env, switchyard_init_relay(env, exports));
  return exports;
}
