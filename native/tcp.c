/*
 * Options of proxied TCP connections: keepalive probes (setKeepAlive) and the
 * bytes still on their way to the peer (pendingBytes).
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

/* The connection's TCP state (TCP_ESTABLISHED, TCP_CLOSE, ...); -1 with errno set on failure. */
static int tcp_state(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return -1;
  return ti.tcpi_state;
}

int sy_tcp_outq(int fd, const char **syscall, const char **detail) {
  int queued = 0;
  int state = tcp_state(fd);
  if (state < 0) return (*syscall = "getsockopt", *detail = "TCP_INFO", -1);
  if (state != TCP_CLOSE && ioctl(fd, SIOCOUTQ, &queued) != 0) return (*syscall = "ioctl", *detail = "SIOCOUTQ", -1);
  return state == TCP_CLOSE ? 0 : queued;
}

/*
 * pendingBytes(fd) -> bytes written that the peer has not acknowledged yet
 * (SIOCOUTQ), or 0 once the connection is closed: after a reset the kernel
 * leaves the old count in place, and those bytes will never move.
 */
static napi_value pending_bytes(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  const char *syscall = NULL, *detail = NULL;
  int queued = sy_tcp_outq(fd, &syscall, &detail);
  if (queued < 0) return sy_throw_errno(env, errno, syscall, detail);
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, queued, &result));
  return result;
}

/*
 * isReset(fd) -> whether the connection ended in an error in the kernel (a
 * reset, a keepalive or retransmission timeout) while this process may not be
 * reading it: TCP_CLOSE with an error pending. A close by FIN both ways also
 * ends in TCP_CLOSE, with no error: that is not a reset. Reading SO_ERROR
 * clears it, which is fine: the caller closes the socket when it is set.
 */
static napi_value is_reset(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd, err = 0;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  int state = tcp_state(fd);
  if (state < 0) return sy_throw_errno(env, errno, "getsockopt", "TCP_INFO");
  socklen_t len = sizeof err;
  if (state == TCP_CLOSE && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return sy_throw_errno(env, errno, "getsockopt", "SO_ERROR");
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, state == TCP_CLOSE && err != 0, &result));
  return result;
}

napi_status switchyard_init_tcp(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      SY_FN("setKeepAlive", set_keep_alive),
      SY_FN("pendingBytes", pending_bytes),
      SY_FN("isReset", is_reset),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
