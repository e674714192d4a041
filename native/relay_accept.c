/*
 * Accepting on the relay's thread: no net.Socket per connection, and accept(2)
 * off the JS thread. JS listens on a socket, is told through the tsfn that
 * connections wait, and takes them (fds and addresses) with takeAccepted().
 *
 *   listen(fd, wantLocal) -> tag      the thread accepts on fd from now on
 *   unlisten(tag) -> bool             and no more once this returns
 *   takeAccepted() -> [fd, tag, address, port, localAddress, localPort, ...]
 *                                     fd -1: a connection refused, address its errno name
 *
 * Sharing between workers: every worker's thread watching a shared socket
 * is woken by a connection (no EPOLLEXCLUSIVE, which wakes the first waiter
 * in the socket's queue, the same thread whenever it is idle), each accepts
 * at most ACCEPT_BATCH per turn, and none accepts while ACCEPT_QUEUE_MAX of
 * its connections wait for its JavaScript (hold). The price is a wake-up of
 * each thread per burst (libuv's own accept wakes every worker the same way).
 *
 * Out of fds (EMFILE, ENFILE) a pending connection is accepted into a reserve
 * fd and closed at once, and JS counts the refusal: the client learns at once,
 * and the listener is not reported ready on every turn for a connection that
 * cannot be taken. If not even that works, the listener rests off epoll for
 * REST_MS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fd_util.h"
#include "napi_util.h"
#include "relay.h"

/* Accepts per listener per turn: the rest wait for the next turn (level-triggered), or for another worker. */
#define ACCEPT_BATCH 4
/*
 * Accepted connections JS has not taken yet, past which a thread stops
 * accepting until it has: a worker whose JavaScript is busy leaves new
 * connections to the others, and in a burst (64 keep-alive connections opened
 * at once) the thread woken first cannot take them all before another
 * worker's thread even runs (without it: 59/6 and 0/65 splits in make bench).
 */
#define ACCEPT_QUEUE_MAX 8
#define REST_MS 100
#define ACCEPTED_FIELDS 6

/* Under mu. False: no memory for it. */
static bool push(struct relay *r, const struct relay_accepted *a) {
  if (r->naccepted == r->cap_accepted) {
    size_t cap = r->cap_accepted == 0 ? 64 : r->cap_accepted * 2;
    struct relay_accepted *grown = realloc(r->accepted, cap * sizeof *grown);
    if (grown == NULL) return false;
    r->accepted = grown;
    r->cap_accepted = cap;
  }
  r->accepted[r->naccepted++] = *a;
  return true;
}

/* Out of fds: 1, one connection accepted into the reserve and closed; 0, none was waiting; -1, not possible now. */
static int refuse_one(struct relay *r, struct relay_listener *l) {
  if (r->reserve_fd < 0) r->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (r->reserve_fd < 0) return -1;
  close(r->reserve_fd);
  int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
  int err = errno;
  if (fd >= 0) close(fd);
  r->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) return 1;
  return err == EAGAIN || err == EWOULDBLOCK ? 0 : -1;
}

static void rest(struct relay *r, struct relay_listener *l) {
  epoll_ctl(r->epfd, EPOLL_CTL_DEL, l->fd, NULL);
  l->resting = true;
  list_add_tail(&r->resting, &l->rest);
  r->rest_until = r->now + REST_MS;
}

static int watch_listener(struct relay *r, struct relay_listener *l) {
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = (void *)((uintptr_t)l | RELAY_TAG_LISTENER)};
  return epoll_ctl(r->epfd, EPOLL_CTL_ADD, l->fd, &ev);
}

/* Off epoll until JS has taken what waits for it (accept_turn puts it back). Under listen_mu. */
static void hold(struct relay *r, struct relay_listener *l) {
  epoll_ctl(r->epfd, EPOLL_CTL_DEL, l->fd, NULL);
  l->held = true;
  list_add_tail(&r->held, &l->hold);
  __atomic_store_n(&r->holding, true, __ATOMIC_RELEASE);
}

void accept_ready(struct relay *r, struct relay_listener *l) {
  pthread_mutex_lock(&r->listen_mu);
  if (l->removed || l->resting || l->held) {
    pthread_mutex_unlock(&r->listen_mu);
    return;
  }
  pthread_mutex_lock(&r->mu);
  bool full = r->naccepted >= ACCEPT_QUEUE_MAX;
  pthread_mutex_unlock(&r->mu);
  if (full) {
    hold(r, l);
    pthread_mutex_unlock(&r->listen_mu);
    return;
  }
  struct relay_accepted batch[ACCEPT_BATCH];
  int n = 0;
  while (n < ACCEPT_BATCH) {
    struct relay_accepted *a = &batch[n];
    socklen_t len = sizeof a->peer;
    *a = (struct relay_accepted){.fd = -1, .tag = l->tag};
    int fd = accept4(l->fd, (struct sockaddr *)&a->peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (err == EINTR || err == ECONNABORTED) continue; /* that client is gone already */
      if (err == EMFILE || err == ENFILE) {
        int refused = refuse_one(r, l);
        if (refused == 1) {
          a->err = err;
          n++;
          continue;
        }
        if (refused < 0) rest(r, l);
        break;
      }
      /* ENOBUFS, ENOMEM, EPERM (a firewall) ...: counted; the connection, if any, is tried again next turn. */
      a->err = err;
      n++;
      break;
    }
    a->fd = fd;
    if (l->local) {
      socklen_t local_len = sizeof a->local;
      a->has_local = getsockname(fd, (struct sockaddr *)&a->local, &local_len) == 0;
    }
    n++;
  }
  if (n > 0) {
    pthread_mutex_lock(&r->mu);
    for (int i = 0; i < n; i++)
      if (!push(r, &batch[i]) && batch[i].fd >= 0) close(batch[i].fd);
    pthread_mutex_unlock(&r->mu);
  }
  /* Released only now: once unlisten() has it, every connection accepted on l is where takeAccepted() finds it. */
  pthread_mutex_unlock(&r->listen_mu);
}

void accept_turn(struct relay *r) {
  pthread_mutex_lock(&r->mu);
  struct relay_listener *gone = r->unlistened;
  r->unlistened = NULL;
  pthread_mutex_unlock(&r->mu);
  /* Events of this turn that named them were handled before now; later ones cannot (unlisten deleted them from epoll first). */
  for (struct relay_listener *l = gone, *next; l != NULL; l = next) {
    next = l->next;
    list_del(&l->rest);
    list_del(&l->hold);
    free(l);
  }
  if (!list_empty(&r->held)) {
    pthread_mutex_lock(&r->mu);
    bool room = r->naccepted < ACCEPT_QUEUE_MAX;
    pthread_mutex_unlock(&r->mu);
    if (room) {
      pthread_mutex_lock(&r->listen_mu);
      __atomic_store_n(&r->holding, false, __ATOMIC_RELEASE);
      while (!list_empty(&r->held)) {
        struct relay_listener *l = RELAY_OWNER(r->held.next, struct relay_listener, hold);
        list_del(&l->hold);
        l->held = false;
        if (!l->removed && watch_listener(r, l) != 0) rest(r, l);
      }
      pthread_mutex_unlock(&r->listen_mu);
    }
  }
  if (list_empty(&r->resting) || r->now < r->rest_until) return;
  pthread_mutex_lock(&r->listen_mu);
  while (!list_empty(&r->resting)) {
    struct relay_listener *l = RELAY_OWNER(r->resting.next, struct relay_listener, rest);
    list_del(&l->rest);
    l->resting = false;
    /* Failing, it stays off epoll: JS sees the refusals it counted stop, and its overload and fd checks take over. */
    if (!l->removed) watch_listener(r, l);
  }
  pthread_mutex_unlock(&r->listen_mu);
}

int accept_timeout_ms(const struct relay *r, int timeout) {
  return list_empty(&r->resting) ? timeout : relay_sooner(timeout, r->now, r->rest_until);
}

static void free_listeners(struct relay_listener *l) {
  for (struct relay_listener *next; l != NULL; l = next) {
    next = l->next;
    free(l);
  }
}

void accept_stop(struct relay *r) {
  free_listeners(r->listeners);
  free_listeners(r->unlistened);
  r->listeners = r->unlistened = NULL;
  list_init(&r->resting);
  list_init(&r->held);
  for (size_t i = 0; i < r->naccepted; i++)
    if (r->accepted[i].fd >= 0) close(r->accepted[i].fd);
  free(r->accepted);
  r->accepted = NULL;
  r->naccepted = r->cap_accepted = 0;
}

/* JS thread from here on. */

napi_value relay_m_listen(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  struct relay *r = relay_get_self(env, info, 2, argv, false);
  int fd;
  bool local;
  if (r == NULL || !sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  if (napi_get_value_bool(env, argv[1], &local) != napi_ok) {
    sy_throw_arg(env, false, "wantLocal", "of type boolean");
    return NULL;
  }
  const char *syscall = NULL;
  int err = r->started ? 0 : relay_start(r, &syscall);
  if (err != 0) return sy_throw_errno(env, err, syscall, NULL);
  /*
   * The thread accepts until EAGAIN: on a blocking socket the last accept(2)
   * would wait for the next client, and every connection of the worker with
   * it. Sockets from systemd's socket activation are blocking unless the unit
   * says NonBlocking=yes. The flag belongs to the socket, shared with the
   * supervisor and every worker: all of them want it.
   */
  if (sy_set_nonblock(fd, true) != 0) return sy_throw_errno(env, errno, "fcntl", "O_NONBLOCK");
  struct relay_listener *l = calloc(1, sizeof *l);
  if (l == NULL) return sy_throw_errno(env, ENOMEM, "calloc", "relay listener");
  l->fd = fd;
  l->local = local;
  l->tag = ++r->next_tag;
  if (watch_listener(r, l) != 0) {
    err = errno;
    free(l);
    return sy_throw_errno(env, err, "epoll_ctl", "listening socket");
  }
  l->next = r->listeners;
  r->listeners = l;
  napi_value result;
  NAPI_CALL(env, napi_create_uint32(env, l->tag, &result));
  return result;
}

napi_value relay_m_unlisten(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct relay *r = relay_get_self(env, info, 1, argv, true);
  int64_t tag;
  if (r == NULL || !sy_get_int(env, argv[0], "tag", 0, UINT32_MAX, &tag)) return NULL;
  struct relay_listener *l = NULL;
  if (!r->closed) {
    for (struct relay_listener **p = &r->listeners; *p != NULL; p = &(*p)->next) {
      if ((*p)->tag != (uint32_t)tag) continue;
      l = *p;
      *p = l->next;
      break;
    }
  }
  if (l != NULL) {
    pthread_mutex_lock(&r->listen_mu);
    l->removed = true;
    epoll_ctl(r->epfd, EPOLL_CTL_DEL, l->fd, NULL); /* ENOENT while resting */
    pthread_mutex_unlock(&r->listen_mu);
    pthread_mutex_lock(&r->mu);
    l->next = r->unlistened;
    r->unlistened = l;
    pthread_mutex_unlock(&r->mu);
  }
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, l != NULL, &result));
  return result;
}

static napi_value address_of(napi_env env, const struct sockaddr_storage *ss, int *port) {
  char text[INET6_ADDRSTRLEN];
  const void *addr;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
    addr = &v4->sin_addr;
    *port = ntohs(v4->sin_port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
    addr = &v6->sin6_addr;
    *port = ntohs(v6->sin6_port);
  } else {
    return NULL;
  }
  napi_value value = NULL;
  if (inet_ntop(ss->ss_family, addr, text, sizeof text) == NULL ||
      napi_create_string_latin1(env, text, NAPI_AUTO_LENGTH, &value) != napi_ok)
    return NULL;
  return value;
}

static bool set_record(napi_env env, napi_value array, uint32_t at, const struct relay_accepted *a) {
  napi_value v[ACCEPTED_FIELDS];
  int port = -1, local_port = -1;
  if (napi_create_int32(env, a->fd, &v[0]) != napi_ok || napi_create_uint32(env, a->tag, &v[1]) != napi_ok) return false;
  if (a->fd < 0) {
    if (napi_create_string_utf8(env, sy_errno_name(a->err), NAPI_AUTO_LENGTH, &v[2]) != napi_ok) return false;
  } else if ((v[2] = address_of(env, &a->peer, &port)) == NULL && napi_get_undefined(env, &v[2]) != napi_ok) {
    return false;
  }
  if (!a->has_local || (v[4] = address_of(env, &a->local, &local_port)) == NULL) {
    if (napi_get_undefined(env, &v[4]) != napi_ok) return false;
  }
  if (napi_create_int32(env, port, &v[3]) != napi_ok || napi_create_int32(env, local_port, &v[5]) != napi_ok) return false;
  for (uint32_t i = 0; i < ACCEPTED_FIELDS; i++)
    if (napi_set_element(env, array, at + i, v[i]) != napi_ok) return false;
  return true;
}

napi_value relay_m_take_accepted(napi_env env, napi_callback_info info) {
  struct relay *r = relay_get_self(env, info, 0, NULL, true);
  if (r == NULL) return NULL;
  pthread_mutex_lock(&r->mu);
  struct relay_accepted *list = r->accepted;
  size_t n = r->naccepted;
  r->accepted = NULL;
  r->naccepted = r->cap_accepted = 0;
  pthread_mutex_unlock(&r->mu);
  napi_value array;
  bool ok = napi_create_array_with_length(env, n * ACCEPTED_FIELDS, &array) == napi_ok;
  for (size_t i = 0; ok && i < n; i++) ok = set_record(env, array, (uint32_t)(i * ACCEPTED_FIELDS), &list[i]);
  /* A thread that stopped accepting for want of room (hold) takes up again on its next turn. */
  if (n > 0 && __atomic_load_n(&r->holding, __ATOMIC_ACQUIRE)) relay_wake(r);
  if (!ok) {
    /* Nobody will see these fds: the clients are closed rather than left hanging. */
    for (size_t i = 0; i < n; i++)
      if (list[i].fd >= 0) close(list[i].fd);
    free(list);
    sy_napi_ok(env, napi_generic_failure, "takeAccepted");
    return NULL;
  }
  free(list);
  return array;
}
