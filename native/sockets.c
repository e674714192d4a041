/*
 * Socket creation and inspection: listenTcp, socketName, socketInode,
 * socketPair, setRecvTimeout, closeFd, dupFd, setBlocking, getPeerCred.
 * Every path that opened an fd closes it before throwing.
 */
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "fd_util.h"
#include "napi_util.h"
#include "tcp.h"

#define HOST_MAX 64

/* Reads an optional boolean property of an optional options object. */
static bool get_opt_bool(napi_env env, napi_value opts, const char *key, bool *value) {
  bool has = false;
  napi_value v;
  napi_valuetype type;
  if (!sy_napi_ok(env, napi_has_named_property(env, opts, key, &has), "napi_has_named_property")) return false;
  if (!has) return true;
  if (!sy_napi_ok(env, napi_get_named_property(env, opts, key, &v), "napi_get_named_property")) return false;
  if (!sy_napi_ok(env, napi_typeof(env, v, &type), "napi_typeof")) return false;
  if (type == napi_undefined) return true;
  if (type != napi_boolean) {
    char name[64];
    snprintf(name, sizeof name, "opts.%s", key);
    return sy_throw_arg(env, false, name, "of type boolean");
  }
  return sy_napi_ok(env, napi_get_value_bool(env, v, value), "napi_get_value_bool");
}

/* Reads an optional integer property (min..max) of an options object; *has says whether it was there. */
static bool get_opt_int(napi_env env, napi_value opts, const char *key, int64_t min, int64_t max, int64_t *value, bool *has) {
  napi_value v;
  napi_valuetype type;
  *has = false;
  if (!sy_napi_ok(env, napi_has_named_property(env, opts, key, has), "napi_has_named_property")) return false;
  if (!*has) return true;
  if (!sy_napi_ok(env, napi_get_named_property(env, opts, key, &v), "napi_get_named_property")) return false;
  if (!sy_napi_ok(env, napi_typeof(env, v, &type), "napi_typeof")) return false;
  if (type == napi_undefined) return (*has = false, true);
  char name[64];
  snprintf(name, sizeof name, "opts.%s", key);
  return sy_get_int(env, v, name, min, max, value);
}

static int set_int_opt(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value);
}

/* Closes fd, then throws errno `err` (close must not clobber it). */
static napi_value close_and_throw(napi_env env, int fd, int err, const char *syscall, const char *detail) {
  close(fd);
  return sy_throw_errno(env, err, syscall, detail);
}

/* listenTcp(host, port, backlog, opts?) -> fd */
static napi_value listen_tcp(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 4, argv);

  napi_valuetype type;
  char host[HOST_MAX];
  size_t host_len = 0;
  NAPI_CALL(env, napi_typeof(env, argv[0], &type));
  if (type != napi_string) return (sy_throw_arg(env, false, "host", "of type string"), NULL);
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], NULL, 0, &host_len));
  if (host_len >= sizeof host) return sy_throw_errno(env, EINVAL, "inet_pton", "(host too long)");
  NAPI_CALL(env, napi_get_value_string_utf8(env, argv[0], host, sizeof host, &host_len));
  if (strlen(host) != host_len) return sy_throw_errno(env, EINVAL, "inet_pton", "(host contains NUL)");

  int64_t port, backlog;
  if (!sy_get_int(env, argv[1], "port", 0, 65535, &port)) return NULL;
  if (!sy_get_int(env, argv[2], "backlog", 0, INT32_MAX, &backlog)) return NULL;

  bool v6only = true, reuse_port = false, freebind = false, no_delay = false;
  bool keepalive = false, has_intvl = false, has_probes = false;
  int64_t keep_idle = 0, keep_intvl = 0, keep_probes = 0;
  NAPI_CALL(env, napi_typeof(env, argv[3], &type));
  if (type == napi_object) {
    if (!get_opt_bool(env, argv[3], "v6only", &v6only) ||
        !get_opt_bool(env, argv[3], "reusePort", &reuse_port) ||
        !get_opt_bool(env, argv[3], "freebind", &freebind) ||
        !get_opt_bool(env, argv[3], "noDelay", &no_delay) ||
        !get_opt_int(env, argv[3], "keepAliveIdleS", 1, SY_KEEPALIVE_TIME_MAX, &keep_idle, &keepalive) ||
        !get_opt_int(env, argv[3], "keepAliveIntervalS", 1, SY_KEEPALIVE_TIME_MAX, &keep_intvl, &has_intvl) ||
        !get_opt_int(env, argv[3], "keepAliveProbes", 1, SY_KEEPALIVE_PROBES_MAX, &keep_probes, &has_probes))
      return NULL;
    if (keepalive && !(has_intvl && has_probes))
      return (sy_throw_arg(env, false, "opts.keepAliveIntervalS and opts.keepAliveProbes", "given with opts.keepAliveIdleS"), NULL);
  } else if (type != napi_undefined && type != napi_null) {
    return (sy_throw_arg(env, false, "opts", "of type object"), NULL);
  }

  struct sockaddr_storage ss;
  socklen_t sslen;
  int family;
  char where[HOST_MAX + 16];
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
    family = AF_INET;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sslen = sizeof *sin;
    snprintf(where, sizeof where, "%s:%u", host, (unsigned)port);
  } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
    family = AF_INET6;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)port);
    sslen = sizeof *sin6;
    snprintf(where, sizeof where, "[%s]:%u", host, (unsigned)port);
  } else {
    return sy_throw_errno(env, EINVAL, "inet_pton", host);
  }

  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return sy_throw_errno(env, errno, "socket", where);

  if (set_int_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) != 0)
    return close_and_throw(env, fd, errno, "setsockopt", "SO_REUSEADDR");
  if (family == AF_INET6 && set_int_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only) != 0)
    return close_and_throw(env, fd, errno, "setsockopt", "IPV6_V6ONLY");
  if (reuse_port && set_int_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) != 0)
    return close_and_throw(env, fd, errno, "setsockopt", "SO_REUSEPORT");
  /* IP_FREEBIND at SOL_IP applies to IPv6 sockets too (shared inet flag). */
  if (freebind && set_int_opt(fd, IPPROTO_IP, IP_FREEBIND, 1) != 0)
    return close_and_throw(env, fd, errno, "setsockopt", "IP_FREEBIND");
  /* Accepted connections inherit these from the listener: workers set nothing per connection. */
  if (no_delay && set_int_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1) != 0)
    return close_and_throw(env, fd, errno, "setsockopt", "TCP_NODELAY");
  const char *failed = NULL;
  if (keepalive && sy_set_keepalive(fd, (int)keep_idle, (int)keep_intvl, (int)keep_probes, &failed) != 0)
    return close_and_throw(env, fd, errno, "setsockopt", failed);
  if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) return close_and_throw(env, fd, errno, "bind", where);
  if (listen(fd, (int)backlog) != 0) return close_and_throw(env, fd, errno, "listen", where);

  napi_value result;
  NAPI_CALL_GOTO(env, napi_create_int32(env, fd, &result), fail);
  return result;
fail:
  close(fd);
  return NULL;
}

/* socketName(fd) -> {address, port, family} */
static napi_value socket_name(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;

  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return sy_throw_errno(env, errno, "getsockname", NULL);

  char addr[INET6_ADDRSTRLEN];
  unsigned port;
  int fam;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof addr);
    port = ntohs(sin->sin_port);
    fam = 4;
  } else if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof addr);
    port = ntohs(sin6->sin6_port);
    fam = 6;
  } else {
    return sy_throw_errno(env, EAFNOSUPPORT, "getsockname", "(not an IP socket)");
  }

  napi_value obj, v_addr, v_port, v_fam;
  NAPI_CALL(env, napi_create_object(env, &obj));
  NAPI_CALL(env, napi_create_string_utf8(env, addr, NAPI_AUTO_LENGTH, &v_addr));
  NAPI_CALL(env, napi_create_uint32(env, port, &v_port));
  NAPI_CALL(env, napi_create_int32(env, fam, &v_fam));
  NAPI_CALL(env, napi_set_named_property(env, obj, "address", v_addr));
  NAPI_CALL(env, napi_set_named_property(env, obj, "port", v_port));
  NAPI_CALL(env, napi_set_named_property(env, obj, "family", v_fam));
  return obj;
}

/* socketInode(fd) -> st_ino, the number in /proc/PID/fd's "socket:[INODE]" */
static napi_value socket_inode(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) return sy_throw_errno(env, errno, "fstat", NULL);
  napi_value result;
  NAPI_CALL(env, napi_create_double(env, (double)st.st_ino, &result));
  return result;
}

/* socketPair() -> [fd, fd] */
static napi_value socket_pair(napi_env env, napi_callback_info info) {
  (void)info;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return sy_throw_errno(env, errno, "socketpair", NULL);
  napi_value arr, a, b;
  NAPI_CALL_GOTO(env, napi_create_array_with_length(env, 2, &arr), fail);
  NAPI_CALL_GOTO(env, napi_create_int32(env, sv[0], &a), fail);
  NAPI_CALL_GOTO(env, napi_create_int32(env, sv[1], &b), fail);
  NAPI_CALL_GOTO(env, napi_set_element(env, arr, 0, a), fail);
  NAPI_CALL_GOTO(env, napi_set_element(env, arr, 1, b), fail);
  return arr;
fail:
  close(sv[0]);
  close(sv[1]);
  return NULL;
}

/* setRecvTimeout(fd, ms); 0 means block forever (SO_RCVTIMEO semantics). */
static napi_value set_recv_timeout(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 2, argv);
  int fd;
  int64_t ms;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  if (!sy_get_int(env, argv[1], "ms", 0, INT32_MAX, &ms)) return NULL;
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    return sy_throw_errno(env, errno, "setsockopt", "SO_RCVTIMEO");
  return NULL;
}

/* closeFd(fd). On Linux the fd is gone even on EINTR, so that is success, never a retry. */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  if (close(fd) != 0 && errno != EINTR) return sy_throw_errno(env, errno, "close", NULL);
  return NULL;
}

/* setBlocking(fd, blocking): O_NONBLOCK cleared or set, as systemd's socket activation passes sockets (blocking unless NonBlocking=yes). */
static napi_value set_blocking(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 2, argv);
  int fd;
  bool blocking;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  if (napi_get_value_bool(env, argv[1], &blocking) != napi_ok) {
    sy_throw_arg(env, false, "blocking", "of type boolean");
    return NULL;
  }
  if (sy_set_nonblock(fd, !blocking) != 0) return sy_throw_errno(env, errno, "fcntl", "O_NONBLOCK");
  return NULL;
}

/* dupFd(fd) -> a new close-on-exec fd for the same open file (F_DUPFD_CLOEXEC). */
static napi_value dup_fd(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return sy_throw_errno(env, errno, "fcntl", "F_DUPFD_CLOEXEC");
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, copy, &result));
  return result;
}

/* getPeerCred(fd) -> {pid, uid, gid} of the process that connected (or created the pair). */
static napi_value get_peer_cred(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return sy_throw_errno(env, errno, "getsockopt", "SO_PEERCRED");
  napi_value obj, pid, uid, gid;
  NAPI_CALL(env, napi_create_object(env, &obj));
  NAPI_CALL(env, napi_create_int32(env, cred.pid, &pid));
  NAPI_CALL(env, napi_create_uint32(env, cred.uid, &uid));
  NAPI_CALL(env, napi_create_uint32(env, cred.gid, &gid));
  NAPI_CALL(env, napi_set_named_property(env, obj, "pid", pid));
  NAPI_CALL(env, napi_set_named_property(env, obj, "uid", uid));
  NAPI_CALL(env, napi_set_named_property(env, obj, "gid", gid));
  return obj;
}

napi_status switchyard_init_sockets(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      SY_FN("listenTcp", listen_tcp),     SY_FN("socketName", socket_name), SY_FN("socketInode", socket_inode),
      SY_FN("socketPair", socket_pair),   SY_FN("setRecvTimeout", set_recv_timeout),
      SY_FN("closeFd", close_fd), SY_FN("dupFd", dup_fd),         SY_FN("getPeerCred", get_peer_cred),
      SY_FN("setBlocking", set_blocking),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
