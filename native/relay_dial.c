/*
 * Connecting to targets on the relay's thread: JS picks the target, the thread
 * makes the socket, connects without blocking and, once connected, carries the
 * connection like any other. On loopback the handshake runs inside connect(2):
 * here it costs the relay's thread, not the JS thread that routes the next one.
 *
 *   dial(clientFd, host, port, connectTimeoutMs, idleMs or -1, toTarget?) -> id
 *   redial(id, host, port, connectTimeoutMs) -> whether the connection is still there
 *
 * host is an IP address (JS resolves names). Each connect's outcome is an
 * event for JS (connected, or failed: refused, timeout, error with its errno);
 * after a failure the connection waits, its client held, until JS redials it
 * to the next target or shuts it down.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "fd_util.h"
#include "napi_util.h"
#include "relay.h"
#include "tcp.h"

/* ConnectTimeoutMs allows far less (config/schema.ts); this keeps the arithmetic in range. */
#define MAX_CONNECT_TIMEOUT_MS ((int64_t)1 << 40)

static void outcome(struct relay *r, struct relay_conn *c, enum relay_event_kind kind, enum relay_dial_failure f, int err) {
  pthread_mutex_lock(&r->mu);
  if (r->events == NULL) r->events_since = r->now;
  if (kind == EVENT_DIAL_FAILED) r->events_urgent = true;
  c->event = kind;
  c->dial_failure = f;
  c->dial_err = err;
  c->event_next = NULL;
  *r->events_tail = c;
  r->events_tail = &c->event_next;
  pthread_mutex_unlock(&r->mu);
}

static void failed(struct relay *r, struct relay_conn *c, enum relay_dial_failure f, int err) {
  wheel_disarm(&r->wheel, &c->timer);
  int fd = c->fd[SIDE_TARGET];
  if (fd >= 0) {
    close(fd); /* socket()'s own: no dup keeps its registration */
    c->fd[SIDE_TARGET] = -1;
  }
  c->watching[SIDE_TARGET] = false;
  c->state = CONN_WAITING;
  outcome(r, c, EVENT_DIAL_FAILED, f, err);
}

/*
 * The target leg's keepalive (4 setsockopt) is set once a connection has
 * lasted KEEPALIVE_AFTER_MS from its connect, not at each: the first probe
 * comes after keep_idle_s of silence (60 s) anyway, a second later at most,
 * and most connections are gone by then.
 */
#define KEEPALIVE_AFTER_MS 1000

void dial_keepalive_turn(struct relay *r) {
  while (!list_empty(&r->keepalive_due)) {
    struct relay_conn *c = RELAY_OWNER(r->keepalive_due.next, struct relay_conn, keepalive);
    if (c->connected_at + KEEPALIVE_AFTER_MS > r->now) return;
    list_del(&c->keepalive);
    const char *option;
    if (sy_set_keepalive(c->fd[SIDE_TARGET], r->keep_idle_s, r->keep_interval_s, r->keep_probes, &option) != 0)
      conn_end(r, c, RELAY_TARGET_ERROR, errno);
  }
}

int dial_keepalive_timeout_ms(const struct relay *r, int timeout) {
  if (list_empty(&r->keepalive_due)) return timeout;
  const struct relay_conn *c = RELAY_OWNER(r->keepalive_due.next, struct relay_conn, keepalive);
  return relay_sooner(timeout, r->now, c->connected_at + KEEPALIVE_AFTER_MS);
}

static void connected(struct relay *r, struct relay_conn *c, bool target_readable) {
  wheel_disarm(&r->wheel, &c->timer);
  c->connected_at = r->now;
  list_add_tail(&r->keepalive_due, &c->keepalive);
  outcome(r, c, EVENT_CONNECTED, DIAL_ERROR, 0);
  conn_begin(r, c, target_readable);
}

static enum relay_dial_failure failure_of(int err) { return err == ECONNREFUSED ? DIAL_REFUSED : DIAL_ERROR; }

void dial_start(struct relay *r, struct relay_conn *c) {
  int fd = socket(c->dial_addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return failed(r, c, DIAL_ERROR, errno);
  c->fd[SIDE_TARGET] = fd;
  int one = 1;
  /* The client leg's options come from its listening socket; the target leg gets the same (keepalive later). */
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) return failed(r, c, DIAL_ERROR, errno);
  /* Watched for everything from the start: the connect's EPOLLOUT, then what a carried socket needs (no MOD later). */
  struct epoll_event ev = {.events = RELAY_WATCH, .data.ptr = (void *)((uintptr_t)c | (uintptr_t)SIDE_TARGET)};
  if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int err = errno;
    close(fd);
    c->fd[SIDE_TARGET] = -1;
    return failed(r, c, DIAL_ERROR, err);
  }
  c->watching[SIDE_TARGET] = true;
  if (connect(fd, &c->dial_addr.sa, c->dial_len) == 0) return connected(r, c, true);
  if (errno != EINPROGRESS) return failed(r, c, failure_of(errno), errno);
  c->state = CONN_DIALLING;
  wheel_arm(&r->wheel, &c->timer, r->now + c->dial_timeout_ms);
}

void dial_event(struct relay *r, struct relay_conn *c, uint32_t events) {
  /* Writable with no error or hang-up: connected (the common case, without asking SO_ERROR). */
  if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == EPOLLOUT) return connected(r, c, (events & (EPOLLIN | EPOLLRDHUP)) != 0);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd[SIDE_TARGET], SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) return failed(r, c, failure_of(err), err);
  if (events & (EPOLLERR | EPOLLHUP)) return failed(r, c, DIAL_ERROR, ECONNRESET);
  if (events & EPOLLOUT) connected(r, c, true);
}

void dial_timed_out(struct relay *r, struct relay_conn *c) { failed(r, c, DIAL_TIMEOUT, ETIMEDOUT); }

void dial_take_redials(struct relay *r, struct relay_link *redials) {
  for (;;) {
    /* Under mu: redial() may change where to until the connection is off the list. */
    pthread_mutex_lock(&r->mu);
    struct relay_conn *c = list_empty(redials) ? NULL : RELAY_OWNER(redials->next, struct relay_conn, redial);
    if (c != NULL) {
      list_del(&c->redial);
      c->dial_addr = c->redial_addr;
      c->dial_len = c->redial_len;
      c->dial_timeout_ms = c->redial_timeout_ms;
    }
    pthread_mutex_unlock(&r->mu);
    if (c == NULL) return;
    /* JS redials only after a failure's event; anything else is a stale request. */
    if (!c->ended && c->state == CONN_WAITING) dial_start(r, c);
  }
}

/* JS thread from here on. */

static bool get_address(napi_env env, napi_value host, napi_value port, union relay_addr *ss, socklen_t *len) {
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t n;
  int64_t p;
  napi_valuetype type;
  if (!sy_napi_ok(env, napi_typeof(env, host, &type), "napi_typeof")) return false;
  if (type != napi_string) return sy_throw_arg(env, false, "host", "of type string");
  if (!sy_napi_ok(env, napi_get_value_string_latin1(env, host, text, sizeof text, &n), "napi_get_value_string_latin1")) return false;
  if (!sy_get_int(env, port, "port", 1, 65535, &p)) return false;
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *v4 = &ss->v4;
  struct sockaddr_in6 *v6 = &ss->v6;
  if (n < sizeof text - 1 && inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)p);
    *len = sizeof *v4;
    return true;
  }
  /* A link-local address names its interface: fe80::1%eth0 (or %2). */
  char *zone = strchr(text, '%');
  if (zone != NULL) *zone++ = '\0';
  if (n < sizeof text - 1 && inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)p);
    if (zone != NULL) {
      char *end;
      unsigned long index = strtoul(zone, &end, 10);
      v6->sin6_scope_id = *zone != '\0' && *end == '\0' ? (uint32_t)index : if_nametoindex(zone);
      if (v6->sin6_scope_id == 0) return sy_throw_arg(env, false, "host", "an IPv6 address with a known interface after %");
    }
    *len = sizeof *v6;
    return true;
  }
  return sy_throw_arg(env, false, "host", "an IPv4 or IPv6 address");
}

napi_value relay_m_dial(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  struct relay *r = relay_get_self(env, info, 6, argv, false);
  int client;
  int64_t timeout, idle;
  union relay_addr ss;
  socklen_t len;
  if (r == NULL || !sy_get_fd(env, argv[0], "clientFd", &client) || !get_address(env, argv[1], argv[2], &ss, &len) ||
      !sy_get_int(env, argv[3], "connectTimeoutMs", 1, MAX_CONNECT_TIMEOUT_MS, &timeout) || !relay_get_idle(env, argv[4], &idle))
    return NULL;
  struct relay_conn *c = relay_conn_new(env, client, -1, idle);
  if (c == NULL) return NULL;
  c->state = CONN_DIALLING;
  c->own_client = c->own_target = true;
  c->dial_addr = ss;
  c->dial_len = len;
  c->dial_timeout_ms = timeout;
  if (!relay_get_bytes(env, argv[5], "toTarget", &c->dir[SIDE_CLIENT])) {
    conn_free(c, false);
    return NULL;
  }
  /* The relay's reads never block: a client fd from takeAccepted() is non-blocking already, and so is this then. */
  if (sy_set_nonblock(client, true) != 0) {
    int err = errno;
    conn_free(c, false);
    return sy_throw_errno(env, err, "fcntl", "O_NONBLOCK");
  }
  return relay_submit(env, r, c);
}

napi_value relay_m_redial(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  struct relay *r = relay_get_self(env, info, 4, argv, false);
  int64_t id, timeout;
  union relay_addr ss;
  socklen_t len;
  if (r == NULL || !sy_get_int(env, argv[0], "id", 0, ((int64_t)1 << 53) - 1, &id) || !get_address(env, argv[1], argv[2], &ss, &len) ||
      !sy_get_int(env, argv[3], "connectTimeoutMs", 1, MAX_CONNECT_TIMEOUT_MS, &timeout))
    return NULL;
  pthread_mutex_lock(&r->mu);
  struct relay_conn *c = relay_slot_find(r, (uint64_t)id);
  if (c != NULL) {
    c->redial_addr = ss;
    c->redial_len = len;
    c->redial_timeout_ms = timeout;
    if (!list_linked(&c->redial)) list_add_tail(&r->redials, &c->redial);
  }
  pthread_mutex_unlock(&r->mu);
  if (c != NULL) relay_wake(r);
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, c != NULL, &result));
  return result;
}
