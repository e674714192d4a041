/*
 * The relay: established TCP connections pumped by an epoll thread of their
 * own (splice through pipes), while JS keeps accept, routing and connect.
 *
 *   relay_napi.c   the JS side: create, add, shutdown, close, done() delivery
 *   relay.c        the thread: its loop, the commands JS hands over, slots (ids)
 *   relay_conn.c   one connection: events, pumping both directions, ending
 *   relay_pool.c   the shared free list of empty pipes
 *   relay_wheel.c  idle timers
 *
 * Ownership: a connection is created by add() on the JS thread, belongs to the
 * epoll thread from the moment it is adopted until it has ended, and is freed
 * on the JS thread once its done() has been delivered.
 */
#ifndef SWITCHYARD_RELAY_H
#define SWITCHYARD_RELAY_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <stddef.h>
#include <stdint.h>

#include <node_api.h>

#include "relay_list.h"
#include "relay_pool.h"
#include "relay_wheel.h"

/* Mirrored by REASONS in native/relay.ts. */
enum relay_reason { RELAY_CLOSED, RELAY_CLIENT_ERROR, RELAY_TARGET_ERROR, RELAY_IDLE_TIMEOUT, RELAY_SHUTDOWN };

enum { SIDE_CLIENT = 0, SIDE_TARGET = 1 };

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
  int fd[2];
  /* Edge-triggered readiness: set by an event, cleared by EAGAIN. */
  bool readable[2], writable[2];
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

struct relay {
  /* Fixed at creation. */
  napi_env env;
  napi_threadsafe_function tsfn;
  bool force_copy; /* tests: every direction takes the recv()/send() path */

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
  bool notify_pending;

  /* Epoll thread only. */
  struct relay_pool pool;
  struct relay_wheel wheel;
  struct relay_link all, more;
  struct relay_conn *zombies, **zombies_tail; /* ended this turn; handed to JS at its end */
  int64_t now;
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

static inline uint64_t relay_stat_get(const uint64_t *v) { return __atomic_load_n(v, __ATOMIC_RELAXED); }
static inline void relay_stat_add(uint64_t *v, int64_t d) { __atomic_fetch_add(v, (uint64_t)d, __ATOMIC_RELAXED); }

#endif
