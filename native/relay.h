/*
 * The relay: TCP connections pumped by an epoll thread of their own (splice
 * through pipes). The thread can also accept on listening sockets and connect
 * to targets, while JS keeps routing, limits, balancing and the access log:
 * JS takes what was accepted (takeAccepted), picks a target, and dial() has
 * the thread connect and then carry the connection; or JS connects itself
 * and add() hands over an established pair.
 *
 *   relay_napi.c    the JS side: create, add, shutdown, close
 *   relay_deliver.c the JS side: ends and connect outcomes delivered in batches
 *   relay.c         the thread: its loop, the commands JS hands over, slots (ids)
 *   relay_conn.c    one connection: events, pumping both directions, ending
 *   relay_accept.c  listening sockets: listen/unlisten/takeAccepted, the thread's accept
 *   relay_dial.c    dial/redial, and the thread's non-blocking connect
 *   relay_pool.c    the shared free list of empty pipes
 *   relay_wheel.c   idle (and connect) timers
 *
 * Ownership: a connection is created by add() on the JS thread, belongs to the
 * epoll thread from the moment it is adopted until it has ended, and is freed
 * on the JS thread once its done() has been delivered.
 */
#ifndef SWITCHYARD_RELAY_H
#define SWITCHYARD_RELAY_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <node_api.h>

#include "relay_list.h"
#include "relay_pool.h"
#include "relay_wheel.h"

/* Mirrored by REASONS in native/relay.ts. */
enum relay_reason { RELAY_CLOSED, RELAY_CLIENT_ERROR, RELAY_TARGET_ERROR, RELAY_IDLE_TIMEOUT, RELAY_SHUTDOWN };

enum { SIDE_CLIENT = 0, SIDE_TARGET = 1 };

/* Mirrored by DIAL_FAILURES in native/relay.ts. */
enum relay_dial_failure { DIAL_REFUSED, DIAL_TIMEOUT, DIAL_ERROR };

/* Mirrored by EVENT_KINDS in native/relay.ts. */
enum relay_event_kind { EVENT_NONE, EVENT_CONNECTED, EVENT_DIAL_FAILED };

enum relay_state {
  CONN_RELAYING, /* both sockets connected: bytes move */
  CONN_DIALLING, /* the thread's connect() to the target is in progress */
  CONN_WAITING,  /* a connect failed: JS says where next (redial) or gives up (shutdown) */
};

/* A target's address: IPv4 or IPv6 (a sockaddr_storage would add 200 bytes to every connection). */
union relay_addr {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
};

/* Epoll tags: a connection's address with its side in bit 0; a listener's with bit 1 set. */
#define RELAY_TAG_LISTENER ((uintptr_t)2)

/* Direction s reads fd[s] and writes fd[!s]: dir[SIDE_CLIENT] carries client -> target. */
struct relay_dir {
  struct relay_pipe pipe; /* held only while bytes are in it (fds -1 otherwise) */
  size_t in_pipe;
  /* toTarget/toClient first, later the recv()/send() copy when no pipe could be had. */
  char *buf;
  size_t buf_off, buf_len;
  /*
   * A read filled the copy buffer: more is coming than a message, and splice()
   * through a pipe moves it without the copies. Small messages (a request, a
   * reply) are cheaper copied: a splice of a few hundred bytes costs more
   * than recv() and send() of them.
   */
  bool bulk;
  bool eof;  /* the source said EOF */
  bool shut; /* ... and it has been passed on: shutdown(SHUT_WR) of the destination */
  uint64_t bytes; /* written to the destination */
};

struct relay_conn {
  int fd[2]; /* fd[SIDE_TARGET] is -1 while no connect is in progress (CONN_WAITING) */
  enum relay_state state; /* thread-owned once adopted */
  /* Where the thread connects (dial, redial): set before it is handed over, read by the thread. */
  union relay_addr dial_addr;
  socklen_t dial_len;
  int64_t dial_timeout_ms;
  /* Edge-triggered readiness: set by an event, cleared by EAGAIN (or a short read, see relay_conn.c). */
  bool readable[2], writable[2];
  /* A FIN (or an error) may wait behind the bytes: read until EAGAIN, not only until a short read. */
  bool greedy[2];
  /* Thread-only: events of each side that came before adoption; a dialled client's, until its target is connected. */
  uint32_t early[2];
  /* Registered for RELAY_WATCH already: a dialled connection's client from dial() on, its target from its connect on. */
  bool watching[2];
  /*
   * dial(): the client's fd is the relay's alone (takeAccepted()'s, given up by
   * JS) and the target's is the thread's own (socket()). With no dup, close()
   * alone takes a socket off epoll and sends its FIN.
   */
  bool own_client, own_target;
  struct relay_dir dir[2];
  int64_t idle_ms; /* -1: no idle timeout */
  int64_t last_active;
  struct relay_wheel_entry timer;
  uint64_t id;
  uint64_t seq; /* order of add(): shutdownAll() ends those added before it */

  /* Thread-owned. `adopted` is written false by add() before the fds are in epoll. */
  bool adopted, ended;
  struct relay_link all;  /* relay.all */
  struct relay_link more; /* relay.more: its budget ran out with bytes still moving */

  /* Under relay.mu: relay.shut (shutdown(id) asked, not yet done). */
  struct relay_link shut;
  /* Under relay.mu: relay.redials, with where to (copied to dial_addr by the thread). */
  struct relay_link redial;
  struct relay_link keepalive; /* relay.keepalive_due (thread): a dialled target's, from its connect */
  int64_t connected_at;
  union relay_addr redial_addr;
  socklen_t redial_len;
  int64_t redial_timeout_ms;
  /* Under relay.mu: relay.events (one at a time: a connect's outcome), for the JS thread. */
  struct relay_conn *event_next;
  enum relay_event_kind event;
  enum relay_dial_failure dial_failure;
  int dial_err;
  /* relay.adds, relay.discards, relay.done (under relay.mu) or the thread's relay.zombies. */
  struct relay_conn *next;

  /* Set when it ends, read by the JS thread once it is on the done list. */
  enum relay_reason reason;
  int err;
};

#define RELAY_NO_SLOT UINT32_MAX

struct relay_slot {
  struct relay_conn *conn; /* NULL: free */
  uint32_t gen;
  uint32_t next_free;
};

/* A listening socket the thread accepts on (relay_accept.c). The fd is JS's: unlisten() before closing it. */
struct relay_listener {
  int fd;
  uint32_t tag;
  bool local; /* getsockname() of each connection accepted (the access log, routing by address, PROXY headers) */
  bool removed; /* under relay.listen_mu: unlisten() ran; the thread accepts no more */
  bool resting; /* thread: taken off epoll for a while (out of fds with no reserve) */
  struct relay_link rest; /* relay.resting (thread) */
  bool held; /* thread: taken off epoll until JS takes what was accepted (relay_accept.c, ACCEPT_QUEUE_MAX) */
  struct relay_link hold; /* relay.held (thread) */
  struct relay_listener *next; /* relay.listeners (JS thread), then relay.unlistened (under mu) */
};

/* A connection accepted by the thread, or (fd < 0) a refusal, waiting for takeAccepted(). */
struct relay_accepted {
  int fd;
  int err; /* fd < 0: the accept that failed (EMFILE ...), counted for JS */
  uint32_t tag;
  struct sockaddr_storage peer, local;
  bool has_local;
};

struct relay {
  /* Fixed at creation. */
  napi_env env;
  napi_threadsafe_function tsfn;
  bool force_copy; /* tests: every direction takes the recv()/send() path */
  int keep_idle_s, keep_interval_s, keep_probes; /* keepalive of the sockets dial() connects */

  /* JS thread only. */
  bool started, closed, hooked;
  size_t js_open; /* added, done() not yet delivered: the tsfn is ref'd while > 0 */
  pthread_t thread;
  int epfd, evfd;

  pthread_mutex_t mu;
  /* Under mu: commands from JS. */
  struct relay_conn *adds, **adds_tail;
  struct relay_conn *discards;
  struct relay_link shut;
  uint64_t shut_all_before; /* shutdownAll(): end every connection whose seq is below */
  uint64_t seq;
  bool stop;
  /* Under mu: ids. */
  struct relay_slot *slots;
  uint32_t nslots, free_slot;
  size_t live;
  /* Under mu: ended connections waiting for the JS thread. */
  struct relay_conn *done, **done_tail;
  /*
   * Under mu: connections with a connect's outcome for the JS thread. A failure
   * is urgent (JS redials); successes wait up to CONNECTED_DELAY_MS from the
   * first on the list (events_since) for something that wakes JS anyway.
   */
  struct relay_conn *events, **events_tail;
  bool events_urgent;
  int64_t events_since;
  struct relay_link redials;
  /* Under mu: accepted connections for takeAccepted(); unlistened listeners for the thread to free. */
  struct relay_accepted *accepted;
  size_t naccepted, cap_accepted;
  struct relay_listener *unlistened;
  bool notify_pending;
  /* JS thread: the listeners accepted on. */
  struct relay_listener *listeners;
  uint32_t next_tag;
  /* Held by the thread while it accepts on a listener, and by unlisten(): none is accepted on after it. */
  pthread_mutex_t listen_mu;

  /* Epoll thread only. */
  struct relay_pool pool;
  struct relay_wheel wheel;
  struct relay_link all, more;
  struct relay_link keepalive_due; /* dialled targets connected, in order, without keepalive yet */
  struct relay_conn *zombies, **zombies_tail; /* ended this turn; handed to JS at its end */
  int64_t now;
  int reserve_fd; /* /dev/null, closed for a moment to accept and refuse a connection when out of fds */
  struct relay_link resting;
  int64_t rest_until;
  struct relay_link held;
  bool holding; /* some listener is held: takeAccepted() wakes the thread (atomic) */
  /* Read by JS for stats (relaxed atomics). */
  uint64_t buffers;       /* heap buffers held: toTarget/toClient not yet sent, copies */
  uint64_t copy_reads;    /* reads through a copy buffer instead of a pipe */
  uint64_t pipe_failures; /* pipe2 refused (EMFILE, ENFILE ...): that read took the copy path */
};

/* relay.c, called on the JS thread. */
int relay_start(struct relay *r, const char **syscall); /* 0, or an errno and the call that failed */
/* Joins the thread, then closes every fd it still held (connections left get no done()). */
void relay_stop(struct relay *r);
void relay_wake(struct relay *r);
/*
 * Under mu: the tsfn is called once for whatever JS has waiting (ends, events,
 * accepted); with `all` also for successes of connects not yet due (relay.c,
 * CONNECTED_DELAY_MS).
 */
void relay_notify_locked(struct relay *r, bool all);
/* Under mu; 0 or an errno. Sets c->id and c->seq. */
int relay_slot_alloc(struct relay *r, struct relay_conn *c);
void relay_slot_free(struct relay *r, struct relay_conn *c);
struct relay_conn *relay_slot_find(struct relay *r, uint64_t id);
int64_t relay_now_ms(void);

/* relay_conn.c (epoll thread) */
/*
 * What a carried socket is watched for once adopted. add() registers it with
 * none (only EPOLLERR and EPOLLHUP, which always come): a new socket is
 * writable at once, and each registration would wake the thread for an event
 * it can only drop. Adoption asks for these, on the thread.
 */
#define RELAY_WATCH (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

void conn_adopt(struct relay *r, struct relay_conn *c);
void conn_event(struct relay *r, struct relay_conn *c, int side, uint32_t events);
void conn_pump(struct relay *r, struct relay_conn *c);
void conn_idle_due(struct relay *r, struct relay_conn *c);
void conn_end(struct relay *r, struct relay_conn *c, enum relay_reason reason, int err);
/* Any thread, once nobody else can touch it: closes its fds and frees it. */
void conn_free(struct relay_conn *c, bool close_fds);
/* From CONN_DIALLING once connected: watched for everything, timers set, pumped. */
void conn_begin(struct relay *r, struct relay_conn *c, bool target_readable);

/* relay_dial.c (epoll thread) */
void dial_start(struct relay *r, struct relay_conn *c);
void dial_event(struct relay *r, struct relay_conn *c, uint32_t events);
void dial_timed_out(struct relay *r, struct relay_conn *c);
void dial_take_redials(struct relay *r, struct relay_link *redials);
void dial_keepalive_turn(struct relay *r);
int dial_keepalive_timeout_ms(const struct relay *r, int timeout);

/* relay_accept.c (epoll thread) */
void accept_ready(struct relay *r, struct relay_listener *l);
/* Listeners back on epoll once their rest is over; frees the unlistened. */
void accept_turn(struct relay *r);
int accept_timeout_ms(const struct relay *r, int timeout);
void accept_stop(struct relay *r); /* the thread is gone: frees what it held */

/* relay_deliver.c (JS thread): the threadsafe function's call. */
void relay_deliver(napi_env env, napi_value js_cb, void *context, void *data);

/* N-API methods (JS thread), registered by relay_napi.c. */
struct relay *relay_get_self(napi_env env, napi_callback_info info, size_t want, napi_value *argv, bool allow_closed);
napi_value relay_m_listen(napi_env env, napi_callback_info info);
napi_value relay_m_unlisten(napi_env env, napi_callback_info info);
napi_value relay_m_take_accepted(napi_env env, napi_callback_info info);
napi_value relay_m_dial(napi_env env, napi_callback_info info);
napi_value relay_m_redial(napi_env env, napi_callback_info info);
/* relay_napi.c: argument readers (throw and return false). */
bool relay_get_bytes(napi_env env, napi_value value, const char *name, struct relay_dir *d);
bool relay_get_idle(napi_env env, napi_value value, int64_t *idle);
/* relay_napi.c: a new connection's slot, its registration and its place on the adds list (JS thread). */
napi_value relay_submit(napi_env env, struct relay *r, struct relay_conn *c);
struct relay_conn *relay_conn_new(napi_env env, int client, int target, int64_t idle);

/* No deadline (relay_sooner). */
#define RELAY_NEVER INT64_MAX

/* The epoll timeout in ms: `timeout` (-1: none), or sooner if `due` (the thread's clock) comes first. */
static inline int relay_sooner(int timeout, int64_t now, int64_t due) {
  if (due == RELAY_NEVER) return timeout;
  int64_t left = due - now;
  int ms = left <= 0 ? 0 : left >= INT_MAX ? INT_MAX : (int)left;
  return timeout < 0 || ms < timeout ? ms : timeout;
}

static inline uint64_t relay_stat_get(const uint64_t *v) { return __atomic_load_n(v, __ATOMIC_RELAXED); }
static inline void relay_stat_add(uint64_t *v, int64_t d) { __atomic_fetch_add(v, (uint64_t)d, __ATOMIC_RELAXED); }

#endif
