/*
 * systemd's notify protocol and fd store (sd_notify(3)): datagram unix sockets
 * that carry fds and the sender's pid (unixDgramSocket, sendDatagram,
 * recvDatagram), and memfds for a small state file kept in the fd store
 * (memfdCreate).
 *
 * A notify message is one datagram, "READY=1" or "FDSTORE=1\nFDNAME=x" with
 * fds as SCM_RIGHTS, sent to $NOTIFY_SOCKET; the receiving service manager
 * (systemd, or a test's stand-in) learns the sender from SCM_CREDENTIALS.
 * A path starting with "@" is in the abstract namespace, as in $NOTIFY_SOCKET.
 */
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd_util.h"
#include "napi_util.h"

/* The kernel's SCM_MAX_FD: more fds in one message fail with EINVAL anyway. */
#define MAX_FDS 253
/* A sanity bound for one receive buffer (a datagram cannot be larger than the socket's buffers anyway). */
#define MAX_RECV_BYTES (64 * 1024 * 1024)
/* memfd_create's limit: 249 bytes, so that "memfd:" + name fits NAME_MAX. */
#define MEMFD_NAME_MAX 249

/* Room for the sender's credentials and the most fds one message can carry. */
typedef union {
  struct cmsghdr align;
  char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * MAX_FDS)];
} cmsg_buf;

/*
 * Reads a string without NUL bytes into buf. *len gets its whole UTF-8
 * length, which may be size or more: then buf holds a cut copy that the
 * caller must refuse (with the errno its syscall would give).
 */
static bool get_string(napi_env env, napi_value value, const char *name, char *buf, size_t size, size_t *len) {
  napi_valuetype type;
  size_t copied;
  if (!sy_napi_ok(env, napi_typeof(env, value, &type), "napi_typeof")) return false;
  if (type != napi_string) return sy_throw_arg(env, false, name, "of type string");
  if (!sy_napi_ok(env, napi_get_value_string_utf8(env, value, NULL, 0, len), "napi_get_value_string_utf8"))
    return false;
  if (!sy_napi_ok(env, napi_get_value_string_utf8(env, value, buf, size, &copied), "napi_get_value_string_utf8"))
    return false;
  if (*len < size && strlen(buf) != *len) return sy_throw_arg(env, false, name, "a string without NUL bytes");
  return true;
}

/*
 * Fills *sun for `path`: "@name" is the abstract name (a NUL, then name; the
 * address length, not a NUL, ends it), anything else a file path of at most
 * 107 bytes plus its NUL (common/unix-path.ts's MAX_UNIX_PATH_BYTES; longer
 * paths go through /proc/self/fd/N/name). Returns the address length, or 0
 * with errno EINVAL (empty) or ENAMETOOLONG. Refusing here matters: the
 * kernel would take a longer path cut short, a different file.
 */
static socklen_t unix_address(const char *path, size_t len, struct sockaddr_un *sun) {
  memset(sun, 0, sizeof *sun);
  sun->sun_family = AF_UNIX;
  /* "" or "@" alone would name the empty abstract address, never what a caller meant. */
  if (len == 0 || (len == 1 && path[0] == '@')) {
    errno = EINVAL;
    return 0;
  }
  if (path[0] == '@') {
    if (len > sizeof sun->sun_path) { /* the NUL takes the '@''s place */
      errno = ENAMETOOLONG;
      return 0;
    }
    memcpy(sun->sun_path + 1, path + 1, len - 1);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  }
  if (len >= sizeof sun->sun_path) {
    errno = ENAMETOOLONG;
    return 0;
  }
  memcpy(sun->sun_path, path, len);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

/* Reads a socket path argument into *sun; throws (errno as `syscall` would) and returns 0 if unusable. */
static socklen_t get_unix_address(napi_env env, napi_value value, const char *name, const char *syscall,
                                  struct sockaddr_un *sun, char *path, size_t size) {
  size_t len;
  if (!get_string(env, value, name, path, size, &len)) return 0;
  if (len >= size) {
    sy_throw_errno(env, ENAMETOOLONG, syscall, "(path longer than PATH_MAX)");
    return 0;
  }
  socklen_t sunlen = unix_address(path, len, sun);
  if (sunlen == 0) sy_throw_errno(env, errno, syscall, path);
  return sunlen;
}

/* memfdCreate(name) -> fd of a new, empty, close-on-exec memfd. */
static napi_value memfd_create_fn(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  char name[MEMFD_NAME_MAX + 2];
  size_t len;
  if (!get_string(env, argv[0], "name", name, sizeof name, &len)) return NULL;
  /* Longer than the buffer: the kernel would refuse it too (EINVAL); shorter ones it judges itself. */
  if (len >= sizeof name) return sy_throw_errno(env, EINVAL, "memfd_create", "(name longer than 249 bytes)");
  int fd = memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return sy_throw_errno(env, errno, "memfd_create", name);
  napi_value result;
  NAPI_CALL_GOTO(env, napi_create_int32(env, fd, &result), fail);
  return result;
fail:
  close(fd);
  return NULL;
}

/*
 * unixDgramSocket(bindPath?) -> fd: AF_UNIX SOCK_DGRAM, close-on-exec and
 * non-blocking, with SO_PASSCRED so that every datagram received says who
 * sent it (systemd takes a notify message's MAINPID from there).
 */
static napi_value unix_dgram_socket(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  struct sockaddr_un sun;
  socklen_t sunlen = 0;
  char path[PATH_MAX];
  napi_valuetype type;
  NAPI_CALL(env, napi_typeof(env, argv[0], &type));
  if (type != napi_undefined) {
    sunlen = get_unix_address(env, argv[0], "bindPath", "bind", &sun, path, sizeof path);
    if (sunlen == 0) return NULL;
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return sy_throw_errno(env, errno, "socket", "AF_UNIX SOCK_DGRAM");
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on) != 0) {
    int err = errno;
    close(fd);
    return sy_throw_errno(env, err, "setsockopt", "SO_PASSCRED");
  }
  if (sunlen > 0 && bind(fd, (struct sockaddr *)&sun, sunlen) != 0) {
    int err = errno;
    close(fd);
    return sy_throw_errno(env, err, "bind", path);
  }
  napi_value result;
  NAPI_CALL_GOTO(env, napi_create_int32(env, fd, &result), fail);
  return result;
fail:
  close(fd);
  return NULL;
}

/*
 * sendDatagram(sock, path, data, fds): one sendmsg of `data` to `path`, with
 * `fds` as SCM_RIGHTS. Blocking or not is the socket's (unixDgramSocket's
 * are non-blocking: a receiver whose queue is full answers EAGAIN).
 */
static napi_value send_datagram(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 4, argv);
  int sock;
  struct sockaddr_un sun;
  char path[PATH_MAX];
  if (!sy_get_fd(env, argv[0], "sock", &sock)) return NULL;
  socklen_t sunlen = get_unix_address(env, argv[1], "path", "sendmsg", &sun, path, sizeof path);
  if (sunlen == 0) return NULL;

  bool is_buffer = false;
  void *data = NULL;
  size_t data_len = 0;
  NAPI_CALL(env, napi_is_buffer(env, argv[2], &is_buffer));
  if (!is_buffer) return (sy_throw_arg(env, false, "data", "a Buffer"), NULL);
  NAPI_CALL(env, napi_get_buffer_info(env, argv[2], &data, &data_len));
  /* An empty datagram reads like nothing at the other end (recvmsg returns 0); sd_notify never sends one. */
  if (data_len == 0) return sy_throw_errno(env, EINVAL, "sendmsg", "(empty datagram)");

  bool is_array = false;
  uint32_t nfds = 0;
  NAPI_CALL(env, napi_is_array(env, argv[3], &is_array));
  if (!is_array) return (sy_throw_arg(env, false, "fds", "an array of integers"), NULL);
  NAPI_CALL(env, napi_get_array_length(env, argv[3], &nfds));
  if (nfds > MAX_FDS) return sy_throw_errno(env, EINVAL, "sendmsg", "(more than 253 fds)");
  int fds[MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value el;
    NAPI_CALL(env, napi_get_element(env, argv[3], i, &el));
    if (!sy_get_fd(env, el, "fds[i]", &fds[i])) return NULL;
  }

  struct iovec iov = {.iov_base = data, .iov_len = data_len};
  cmsg_buf control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = &sun;
  msg.msg_namelen = sunlen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
  }

  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return sy_throw_errno(env, errno, "sendmsg", path);
  /* A datagram goes whole or not at all (EMSGSIZE); anything else is a kernel surprise worth an error. */
  if ((size_t)n != data_len) return sy_throw_errno(env, EMSGSIZE, "sendmsg", "(datagram cut short)");
  return NULL;
}

/*
 * recvDatagram(sock, maxBytes, maxFds) -> {data, fds, pid} or null when
 * nothing is queued (EAGAIN). Received fds are close-on-exec; pid is the
 * sender's (SCM_CREDENTIALS, in this process's pid namespace), 0 if the
 * socket lacks SO_PASSCRED. More fds than maxFds, or a datagram longer than
 * maxBytes, throws EMSGSIZE after closing every fd that did arrive: the rest
 * of the message is lost (a datagram is read once), and half of it is no use.
 */
static napi_value recv_datagram(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 3, argv);
  int sock;
  int64_t max_bytes, max_fds;
  if (!sy_get_fd(env, argv[0], "sock", &sock)) return NULL;
  if (!sy_get_int(env, argv[1], "maxBytes", 1, MAX_RECV_BYTES, &max_bytes)) return NULL;
  if (!sy_get_int(env, argv[2], "maxFds", 0, MAX_FDS, &max_fds)) return NULL;

  void *data = malloc((size_t)max_bytes);
  if (data == NULL) return sy_throw_errno(env, ENOMEM, "recvmsg", "(receive buffer)");

  struct iovec iov = {.iov_base = data, .iov_len = (size_t)max_bytes};
  cmsg_buf control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  memset(&control, 0, sizeof control);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  /* Credentials always fit, so MSG_CTRUNC can only mean fds beyond maxFds (which the kernel then closed). */
  msg.msg_controllen = CMSG_SPACE(sizeof(struct ucred)) + (max_fds > 0 ? CMSG_SPACE(sizeof(int) * (size_t)max_fds) : 0);

  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    free(data);
    if (err == EAGAIN || err == EWOULDBLOCK) {
      napi_value null;
      NAPI_CALL(env, napi_get_null(env, &null));
      return null;
    }
    return sy_throw_errno(env, err, "recvmsg", NULL);
  }

  /* More room than the control buffer can carry, so every installed fd is seen (and closable). */
  int fds[sizeof(cmsg_buf) / sizeof(int)];
  size_t nfds = 0;
  int32_t pid = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_CREDENTIALS || c->cmsg_len < CMSG_LEN(sizeof(struct ucred))) continue;
    struct ucred cred;
    memcpy(&cred, CMSG_DATA(c), sizeof cred);
    pid = cred.pid;
  }
  nfds = sy_collect_fds(&msg, fds, sizeof fds / sizeof fds[0]);
  /* CMSG_SPACE rounds up, so the kernel may install one more than maxFds without truncating. */
  if ((msg.msg_flags & MSG_CTRUNC) || nfds > (size_t)max_fds) {
    sy_close_fds(fds, nfds);
    free(data);
    return sy_throw_errno(env, EMSGSIZE, "recvmsg", "(more fds than maxFds)");
  }
  if (msg.msg_flags & MSG_TRUNC) {
    sy_close_fds(fds, nfds);
    free(data);
    return sy_throw_errno(env, EMSGSIZE, "recvmsg", "(datagram longer than maxBytes)");
  }

  napi_value obj, buf, arr, js_pid;
  NAPI_CALL_GOTO(env, napi_create_buffer_copy(env, (size_t)n, data, NULL, &buf), fail);
  free(data);
  data = NULL;
  NAPI_CALL_GOTO(env, napi_create_array_with_length(env, nfds, &arr), fail);
  for (size_t i = 0; i < nfds; i++) {
    napi_value v;
    NAPI_CALL_GOTO(env, napi_create_int32(env, fds[i], &v), fail);
    NAPI_CALL_GOTO(env, napi_set_element(env, arr, (uint32_t)i, v), fail);
  }
  NAPI_CALL_GOTO(env, napi_create_int32(env, pid, &js_pid), fail);
  NAPI_CALL_GOTO(env, napi_create_object(env, &obj), fail);
  NAPI_CALL_GOTO(env, napi_set_named_property(env, obj, "data", buf), fail);
  NAPI_CALL_GOTO(env, napi_set_named_property(env, obj, "fds", arr), fail);
  NAPI_CALL_GOTO(env, napi_set_named_property(env, obj, "pid", js_pid), fail);
  return obj;
fail:
  free(data);
  sy_close_fds(fds, nfds);
  return NULL;
}

napi_status switchyard_init_notify(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      SY_FN("memfdCreate", memfd_create_fn),
      SY_FN("unixDgramSocket", unix_dgram_socket),
      SY_FN("sendDatagram", send_datagram),
      SY_FN("recvDatagram", recv_datagram),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
