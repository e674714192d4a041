/*
 * Options of proxied TCP connections: keepalive probes (setKeepAlive) and how
 * much of what was written the peer has not acknowledged yet (unackedBytes).
 */
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "napi_util.h"
#include "tcp.h"

static int set_int(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

int sy_set_keepalive(int fd, int idle_s, int interval_s, int probes, const char **failed) {
  if (set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1) != 0) return (*failed = "SO_KEEPALIVE", -1);
  if (set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s) != 0) return (*failed = "TCP_KEEPIDLE", -1);
  if (set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, interval_s) != 0) return (*failed = "TCP_KEEPINTVL", -1);
  if (set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, probes) != 0) return (*failed = "TCP_KEEPCNT", -1);
  return 0;
}

/* setKeepAlive(fd, idleS, intervalS, probes): Node's own sets only the idle time (libuv picks 1 s x 10 probes). */
static napi_value set_keep_alive(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 4, argv);
  int fd;
  int64_t idle, interval, probes;
  if (!sy_get_fd(env, argv[0], "fd", &fd) || !sy_get_int(env, argv[1], "idleS", 1, SY_KEEPALIVE_TIME_MAX, &idle) ||
      !sy_get_int(env, argv[2], "intervalS", 1, SY_KEEPALIVE_TIME_MAX, &interval) ||
      !sy_get_int(env, argv[3], "probes", 1, SY_KEEPALIVE_PROBES_MAX, &probes))
    return NULL;
  const char *failed = NULL;
  if (sy_set_keepalive(fd, (int)idle, (int)interval, (int)probes, &failed) != 0)
    return sy_throw_errno(env, errno, "setsockopt", failed);
  return NULL;
}

/* unackedBytes(fd) -> bytes in the send queue the peer has not acknowledged (SIOCOUTQ). */
static napi_value unacked_bytes(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd, n = 0;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  if (ioctl(fd, SIOCOUTQ, &n) != 0) return sy_throw_errno(env, errno, "ioctl", "SIOCOUTQ");
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, n, &result));
  return result;
}

napi_status switchyard_init_tcp(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      SY_FN("setKeepAlive", set_keep_alive),
      SY_FN("unackedBytes", unacked_bytes),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
