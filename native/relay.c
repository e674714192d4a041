/*
 * The relay's epoll thread: its loop, the commands JS hands it, and the ids.
 *
 * Edge-triggered: each socket is watched for EPOLLIN | EPOLLOUT | EPOLLRDHUP |
 * EPOLLET (EPOLLERR and EPOLLHUP always come) from its adoption on, and that
 * never changes.
 * A direction paused by backpressure just stops reading. Level-triggered, its
 * source would be reported on every turn while paused (or need an epoll_ctl to
 * mute it and another to unmute it, per pause), and so would every writable
 * socket with nothing to write: all of them, most of the time. The price of
 * edges is remembering a readiness until EAGAIN says it is used up
 * (relay_conn.readable/writable), and a budget per turn (relay.more).
 *
 * Threads: JS hands its commands over under relay.mu and writes the eventfd
 * that wakes this thread; this thread hands ended connections back the same
 * way, through a threadsafe function. Nothing else is shared.
 *
 * A turn: wait; handle the events; pump the connections whose budget ran out;
 * take JS's commands (add, shutdown, stop); expire idle timers; hand the
 * connections that ended to the JS thread, which frees them. Not sooner: an
 * event later in the same batch may still name one (it finds `ended` set).
 *
 * add() and dial() register the sockets in epoll themselves, on the JS
 * thread, so that a failure throws there with the fds still the caller's.
 * add()'s are watched for nothing yet (RELAY_WATCH at adoption), dial()'s
 * client for everything at once; what comes before the thread has taken the
 * command is only noted (`early`). Adoption pumps both directions as if every
 * readiness had been reported; a dial first connects (relay_dial.c), unless
 * its client has reset meanwhile.
 *
 * Listening sockets (relay_accept.c) are watched level-triggered: a turn
 * accepts a small batch from each that is ready; the rest waits for the next
 * turn, or for another worker's thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define MAX_EVENTS 256
/* id = gen << SLOT_BITS | slot, below 2^53 so that a JS number holds it exactly. */
#define SLOT_BITS 24
#define GEN_MASK ((1u << 29) - 1)

int64_t relay_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void relay_wake(struct relay *r) {
  uint64_t one = 1;
  /* Fails only with the counter at its maximum: then the thread is woken already. */
  if (write(r->evfd, &one, sizeof one) < 0) return;
}

/*
 * How long news of a connect that succeeded may wait for a call of the tsfn
 * that something else makes: a short connection's end, or the next accepted
 * one. It only updates counts (balancing, passive health), and a connection
 * of a few milliseconds then costs the JS thread one wake-up instead of two.
 */
#define CONNECTED_DELAY_MS 5

/* Thread only: whether the JS thread is to be called now for the successes on the events list. */
static bool events_due(const struct relay *r) {
  return r->events != NULL && (r->events_urgent || r->now - r->events_since >= CONNECTED_DELAY_MS);
}

void relay_notify_locked(struct relay *r, bool all) {
  if (r->notify_pending || (r->done == NULL && r->naccepted == 0 && !(all ? r->events != NULL : events_due(r)))) return;
  r->notify_pending = true;
  /* One call delivers everything waiting; it fails only while Node tears the tsfn down. */
  napi_call_threadsafe_function(r->tsfn, NULL, napi_tsfn_nonblocking);
}

int relay_slot_alloc(struct relay *r, struct relay_conn *c) {
  if (r->free_slot == RELAY_NO_SLOT) {
    if (r->nslots == 1u << SLOT_BITS) return ENOSPC;
    uint32_t cap = r->nslots == 0 ? 256 : r->nslots * 2;
    struct relay_slot *slots = realloc(r->slots, cap * sizeof *slots);
    if (slots == NULL) return ENOMEM;
    for (uint32_t i = r->nslots; i < cap; i++)
      slots[i] = (struct relay_slot){.conn = NULL, .gen = 0, .next_free = i + 1 < cap ? i + 1 : RELAY_NO_SLOT};
    r->slots = slots;
    r->free_slot = r->nslots;
    r->nslots = cap;
  }
  uint32_t i = r->free_slot;
  struct relay_slot *s = &r->slots[i];
  r->free_slot = s->next_free;
  s->conn = c;
  c->id = (uint64_t)s->gen << SLOT_BITS | i;
  c->seq = ++r->seq;
  r->live++;
  return 0;
}

void relay_slot_free(struct relay *r, struct relay_conn *c) {
  uint32_t i = (uint32_t)(c->id & ((1u << SLOT_BITS) - 1));
  struct relay_slot *s = &r->slots[i];
  s->conn = NULL;
  s->gen = (s->gen + 1) & GEN_MASK; /* a stale id no longer finds the slot */
  s->next_free = r->free_slot;
  r->free_slot = i;
  r->live--;
}

struct relay_conn *relay_slot_find(struct relay *r, uint64_t id) {
  uint64_t i = id & ((1u << SLOT_BITS) - 1);
  if (i >= r->nslots || r->slots[i].conn == NULL || r->slots[i].gen != id >> SLOT_BITS) return NULL;
  return r->slots[i].conn;
}

static void handle(struct relay *r, const struct epoll_event *e) {
  uintptr_t tag = (uintptr_t)e->data.ptr;
  if (tag == 0) {
    uint64_t v;
    if (read(r->evfd, &v, sizeof v) < 0) return; /* EAGAIN: another turn took the wake-up */
    return;
  }
  if (tag & RELAY_TAG_LISTENER) return accept_ready(r, (struct relay_listener *)(tag & ~RELAY_TAG_LISTENER));
  /* The low bit says which socket: connections are malloc'ed, so aligned. */
  struct relay_conn *c = (struct relay_conn *)(tag & ~(uintptr_t)1);
  if (c->ended) return;
  if (!c->adopted) {
    /* Noted for adoption, which pumps as if every readiness had; a dial checks it for a reset client. */
    c->early[tag & 1] |= e->events;
    return;
  }
  conn_event(r, c, (int)(tag & 1), e->events);
}

static void run_more(struct relay *r) {
  struct relay_link list;
  list_take(&r->more, &list);
  while (!list_empty(&list)) {
    struct relay_conn *c = RELAY_OWNER(list.next, struct relay_conn, more);
    list_del(&c->more);
    conn_pump(r, c);
  }
}

/*
 * Adds first: a shutdown(id) or shutdownAll() names connections added before
 * it. Both are taken in one critical section, so every connection on the
 * shut list taken here is adopted before it is shut; shutdowns asked later
 * wait for the next turn, after their own add.
 */
static bool take_commands(struct relay *r) {
  struct relay_link shut, redials;
  pthread_mutex_lock(&r->mu);
  if (r->stop) {
    pthread_mutex_unlock(&r->mu);
    return true;
  }
  struct relay_conn *adds = r->adds, *discards = r->discards;
  uint64_t before = r->shut_all_before;
  r->adds = NULL;
  r->adds_tail = &r->adds;
  r->discards = NULL;
  r->shut_all_before = 0;
  list_take(&r->shut, &shut);
  list_take(&r->redials, &redials);
  pthread_mutex_unlock(&r->mu);

  for (struct relay_conn *c = adds, *next; c != NULL; c = next) {
    next = c->next;
    c->next = NULL;
    conn_adopt(r, c);
  }
  dial_take_redials(r, &redials);
  for (;;) {
    /* Under mu: shutdown(id) reads whether a connection is on a shut list, and conn_end takes it off. */
    pthread_mutex_lock(&r->mu);
    struct relay_conn *c = list_empty(&shut) ? NULL : RELAY_OWNER(shut.next, struct relay_conn, shut);
    if (c != NULL) list_del(&c->shut);
    pthread_mutex_unlock(&r->mu);
    if (c == NULL) break;
    conn_end(r, c, RELAY_SHUTDOWN, 0);
  }
  if (before != 0) {
    for (struct relay_link *l = r->all.next, *next; l != &r->all; l = next) {
      next = l->next;
      struct relay_conn *c = RELAY_OWNER(l, struct relay_conn, all);
      if (c->seq < before) conn_end(r, c, RELAY_SHUTDOWN, 0);
    }
  }
  /* add() failed half way: any event for these was in a batch handled before now. */
  for (struct relay_conn *c = discards, *next; c != NULL; c = next) {
    next = c->next;
    conn_free(c, false);
  }
  return false;
}

static void expire(struct relay *r) {
  wheel_advance(&r->wheel, r->now);
  struct relay_wheel_entry *e;
  while ((e = wheel_pop_due(&r->wheel)) != NULL) conn_idle_due(r, RELAY_OWNER(e, struct relay_conn, timer));
}

/*
 * Ended connections to the JS thread, and a call of the tsfn if anything
 * (ends, events due, accepted) waits. Returns when the successes not yet due
 * are (RELAY_NEVER: none, or the call that takes them is on its way).
 */
static int64_t hand_over(struct relay *r) {
  pthread_mutex_lock(&r->mu);
  if (r->zombies != NULL) {
    *r->done_tail = r->zombies;
    r->done_tail = r->zombies_tail;
    r->zombies = NULL;
    r->zombies_tail = &r->zombies;
  }
  relay_notify_locked(r, false);
  int64_t due = r->events == NULL || r->notify_pending ? RELAY_NEVER : r->events_since + CONNECTED_DELAY_MS;
  pthread_mutex_unlock(&r->mu);
  return due;
}

static void *relay_main(void *arg) {
  struct relay *r = arg;
  struct epoll_event events[MAX_EVENTS];
  int64_t deliver_at = RELAY_NEVER;
  for (;;) {
    int timeout = list_empty(&r->more) ? dial_keepalive_timeout_ms(r, accept_timeout_ms(r, wheel_timeout_ms(&r->wheel, r->now))) : 0;
    timeout = relay_sooner(timeout, r->now, deliver_at);
    /* Only EINTR can fail it here (n < 0): that is an empty turn. */
    int n = epoll_wait(r->epfd, events, MAX_EVENTS, timeout);
    r->now = relay_now_ms();
    for (int i = 0; i < n; i++) handle(r, &events[i]);
    run_more(r);
    bool stop = take_commands(r);
    accept_turn(r);
    expire(r);
    dial_keepalive_turn(r);
    deliver_at = hand_over(r);
    if (stop) return NULL;
  }
}

static int close_start(struct relay *r, int err) {
  if (r->evfd >= 0) close(r->evfd);
  if (r->epfd >= 0) close(r->epfd);
  if (r->reserve_fd >= 0) close(r->reserve_fd);
  r->epfd = r->evfd = r->reserve_fd = -1;
  return err;
}

int relay_start(struct relay *r, const char **syscall) {
  if ((r->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) return (*syscall = "epoll_create1", close_start(r, errno));
  if ((r->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) return (*syscall = "eventfd", close_start(r, errno));
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->evfd, &ev) != 0) return (*syscall = "epoll_ctl", close_start(r, errno));
  if ((r->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) return (*syscall = "open", close_start(r, errno));
  r->now = relay_now_ms();
  wheel_init(&r->wheel, r->now);
  /* Signals are the JS thread's business: the relay thread blocks them all (SIGPIPE of a splice too). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&r->thread, NULL, relay_main, r);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0) return (*syscall = "pthread_create", close_start(r, err));
  pthread_setname_np(r->thread, "sy-relay"); /* for top -H and perf (15 chars at most); cosmetic, so unchecked */
  r->started = true;
  return 0;
}

static void free_list(struct relay_conn *c, bool close_fds) {
  for (struct relay_conn *next; c != NULL; c = next) {
    next = c->next;
    conn_free(c, close_fds);
  }
}

void relay_stop(struct relay *r) {
  if (!r->started) return;
  pthread_mutex_lock(&r->mu);
  r->stop = true;
  pthread_mutex_unlock(&r->mu);
  relay_wake(r);
  pthread_join(r->thread, NULL);
  r->started = false;
  /* The thread is gone: whatever is left is ours to close, with no done() (only at teardown). */
  while (!list_empty(&r->all)) {
    struct relay_conn *c = RELAY_OWNER(r->all.next, struct relay_conn, all);
    list_del(&c->all);
    conn_free(c, true);
  }
  free_list(r->adds, true);
  free_list(r->discards, false);
  free_list(r->done, false);
  r->adds = r->discards = r->done = r->events = NULL;
  list_init(&r->shut);
  list_init(&r->redials);
  r->adds_tail = &r->adds;
  r->done_tail = &r->done;
  r->events_tail = &r->events;
  accept_stop(r);
  pool_destroy(&r->pool);
  close_start(r, 0);
}
