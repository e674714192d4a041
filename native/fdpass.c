/*
 * fd passing over unix stream sockets with SCM_RIGHTS: sendFds, recvFds.
 * One sendmsg/recvmsg per call; the caller frames its messages.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fd_util.h"
#include "napi_util.h"

/* The kernel's SCM_MAX_FD: more fds in one message fail with EINVAL anyway. */
#define MAX_FDS 253
/* A sanity bound for one receive buffer. */
#define MAX_RECV_BYTES (64 * 1024 * 1024)

typedef union {
  struct cmsghdr align;
  char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
} cmsg_buf;

/* sendFds(sock, data, fds) -> bytes sent */
static napi_value send_fds(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 3, argv);
  int sock;
  if (!sy_get_fd(env, argv[0], "sock", &sock)) return NULL;

  bool is_buffer = false;
  void *data = NULL;
  size_t data_len = 0;
  NAPI_CALL(env, napi_is_buffer(env, argv[1], &is_buffer));
  if (!is_buffer) return (sy_throw_arg(env, false, "data", "a Buffer"), NULL);
  NAPI_CALL(env, napi_get_buffer_info(env, argv[1], &data, &data_len));

  bool is_array = false;
  uint32_t nfds = 0;
  NAPI_CALL(env, napi_is_array(env, argv[2], &is_array));
  if (!is_array) return (sy_throw_arg(env, false, "fds", "an array of integers"), NULL);
  NAPI_CALL(env, napi_get_array_length(env, argv[2], &nfds));
  if (nfds > MAX_FDS) return sy_throw_errno(env, EINVAL, "sendmsg", "(more than 253 fds)");
  /* On a stream socket the fds ride on the data; with no data they would be dropped. */
  if (nfds > 0 && data_len == 0) return sy_throw_errno(env, EINVAL, "sendmsg", "(fds need at least one data byte)");

  int fds[MAX_FDS];
  for (uint32_t i = 0; i < nfds; i++) {
    napi_value el;
    NAPI_CALL(env, napi_get_element(env, argv[2], i, &el));
    if (!sy_get_fd(env, el, "fds[i]", &fds[i])) return NULL;
  }

  struct iovec iov = {.iov_base = data, .iov_len = data_len};
  cmsg_buf control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
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
    // Never block the caller (the supervisor's event loop): a full socket is EAGAIN.
    n = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return sy_throw_errno(env, errno, "sendmsg", NULL);

  napi_value result;
  NAPI_CALL(env, napi_create_double(env, (double)n, &result));
  return result;
}

/* recvFds(sock, maxBytes, maxFds) -> {data, fds}; data is empty at EOF. */
static napi_value recv_fds(napi_env env, napi_callback_info info) {
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
  if (max_fds > 0) {
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)max_fds);
  }

  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    free(data);
    return sy_throw_errno(env, err, "recvmsg", NULL);
  }

  /* More room than any control buffer can carry, so every installed fd is seen (and closable). */
  int fds[sizeof(cmsg_buf) / sizeof(int)];
  size_t nfds = max_fds > 0 ? sy_collect_fds(&msg, fds, sizeof fds / sizeof fds[0]) : 0;
  /* CMSG_SPACE rounds up, so the kernel may install more than maxFds without truncating. */
  if ((msg.msg_flags & MSG_CTRUNC) || nfds > (size_t)max_fds) {
    /* The sender's other fds are lost; a half-delivered set is useless to the caller. */
    sy_close_fds(fds, nfds);
    free(data);
    return sy_throw_errno(env, EMSGSIZE, "recvmsg", "(more fds than maxFds)");
  }

  napi_value obj, buf, arr;
  NAPI_CALL_GOTO(env, napi_create_buffer_copy(env, (size_t)n, data, NULL, &buf), fail);
  free(data);
  data = NULL;
  NAPI_CALL_GOTO(env, napi_create_array_with_length(env, nfds, &arr), fail);
  for (size_t i = 0; i < nfds; i++) {
    napi_value v;
    NAPI_CALL_GOTO(env, napi_create_int32(env, fds[i], &v), fail);
    NAPI_CALL_GOTO(env, napi_set_element(env, arr, (uint32_t)i, v), fail);
  }
  NAPI_CALL_GOTO(env, napi_create_object(env, &obj), fail);
  NAPI_CALL_GOTO(env, napi_set_named_property(env, obj, "data", buf), fail);
  NAPI_CALL_GOTO(env, napi_set_named_property(env, obj, "fds", arr), fail);
  return obj;
fail:
  free(data);
  sy_close_fds(fds, nfds);
  return NULL;
}

napi_status switchyard_init_fdpass(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      SY_FN("sendFds", send_fds),
      SY_FN("recvFds", recv_fds),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
