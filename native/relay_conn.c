/*
 * One connection on the epoll thread: readiness from events, both directions
 * pumped until they must wait, the half-close passed on, the idle check, the end.
 *
 * A direction reads its source only while nothing of it is pending: what one
 * read took must all be written before the next read. So a destination that
 * says EAGAIN pauses the reading of its source (backpressure), and what the
 * relay holds per direction is one pipe or one copy buffer at most.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "relay.h"
#include "tcp.h"

/* Asked of a splice into an empty pipe: it stops at the pipe's capacity (64 KiB, or less for a user past pipe-user-pages-soft). */
#define SPLICE_MAX (1 << 20)
/* The recv()/send() copy: until a read fills it (relay_dir.bulk), and whenever no pipe can be had (EMFILE, ENFILE). */
#define COPY_SIZE (16 * 1024)
/* Reads per direction per turn: one fast connection must not starve 9,999 others. */
#define ROUNDS 16

static enum relay_reason error_of(int side) { return side == SIDE_CLIENT ? RELAY_CLIENT_ERROR : RELAY_TARGET_ERROR; }

static bool pending(const struct relay_dir *d) { return d->in_pipe > 0 || d->buf_off < d->buf_len; }

static void drop_buffer(struct relay *r, struct relay_dir *d) {
  if (d->buf == NULL) return;
  free(d->buf);
  d->buf = NULL;
  d->buf_off = d->buf_len = 0;
  relay_stat_add(&r->buffers, -1);
}

static void queue_more(struct relay *r, struct relay_conn *c) {
  if (!list_linked(&c->more)) list_add_tail(&r->more, &c->more);
}

/* What direction s holds goes to its destination: first the buffer (toTarget/toClient, a copy), else the pipe. */
static ssize_t write_out(struct relay_conn *c, int s) {
  struct relay_dir *d = &c->dir[s];
  int dst = c->fd[!s];
  if (d->buf_off < d->buf_len) return send(dst, d->buf + d->buf_off, d->buf_len - d->buf_off, MSG_NOSIGNAL | MSG_DONTWAIT);
  return splice(d->pipe.r, NULL, dst, NULL, d->in_pipe, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
}

static void wrote(struct relay *r, struct relay_conn *c, int s, size_t n) {
  struct relay_dir *d = &c->dir[s];
  d->bytes += n;
  c->last_active = r->now;
  if (d->buf_off == d->buf_len) {
    d->in_pipe -= n;
  } else if ((d->buf_off += n) == d->buf_len) {
    drop_buffer(r, d);
  }
}

/*
 * One read of direction s through a copy buffer, or, once it moves bulk, into
 * its pipe (taken from the pool; the copy again when no pipe can be had). Called only with nothing pending, so
 * the pipe is empty and EAGAIN can only mean the socket has nothing to read.
 */
static ssize_t read_in(struct relay *r, struct relay_conn *c, int s) {
  struct relay_dir *d = &c->dir[s];
  int src = c->fd[s];
  if (d->bulk && d->pipe.r < 0 && !r->force_copy && pool_take(&r->pool, &d->pipe) != 0) relay_stat_add(&r->pipe_failures, 1);
  if (d->pipe.r >= 0) {
    ssize_t n = splice(src, NULL, d->pipe.w, NULL, SPLICE_MAX, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) d->in_pipe = (size_t)n;
    return n;
  }
  if (d->buf == NULL) {
    if ((d->buf = malloc(COPY_SIZE)) == NULL) return (errno = ENOMEM, -1);
    relay_stat_add(&r->buffers, 1);
  }
  relay_stat_add(&r->copy_reads, 1);
  ssize_t n = recv(src, d->buf, COPY_SIZE, MSG_DONTWAIT);
  if (n > 0) {
    d->buf_off = 0;
    d->buf_len = (size_t)n;
    if (n == COPY_SIZE) d->bulk = true;
  }
  return n;
}

/* Moves direction s until it has to wait; false once the connection has ended. */
static bool pump_dir(struct relay *r, struct relay_conn *c, int s) {
  struct relay_dir *d = &c->dir[s];
  int dst = !s, rounds = 0;
  for (;;) {
    if (pending(d)) {
      if (!c->writable[dst]) break;
      bool copied = d->buf_off < d->buf_len;
      size_t want = copied ? d->buf_len - d->buf_off : d->in_pipe;
      ssize_t n = write_out(c, s);
      if (n > 0) {
        wrote(r, c, s, (size_t)n);
        /* send() took less than it was given: the socket's buffer is full, and EPOLLOUT will say when it has room. */
        if (copied && (size_t)n < want) {
          c->writable[dst] = false;
          break;
        }
      } else if (n == 0 || errno == EAGAIN) {
        c->writable[dst] = false; /* until EPOLLOUT */
        break;
      } else if (errno != EINTR) {
        conn_end(r, c, error_of(dst), errno);
        return false;
      }
      continue;
    }
    if (d->eof) {
      /*
       * Everything before the EOF is written: pass the half-close on. If the
       * other way is shut already, the close() that follows at once sends this
       * FIN: both reads saw EOF, so nothing unread turns it into a reset.
       */
      bool closing = c->own_client && c->own_target && c->dir[dst].shut;
      if (!d->shut && !closing && shutdown(c->fd[dst], SHUT_WR) != 0) {
        conn_end(r, c, error_of(dst), errno);
        return false;
      }
      d->shut = true;
      break;
    }
    if (!c->readable[s]) break;
    if (rounds++ == ROUNDS) {
      queue_more(r, c);
      break;
    }
    ssize_t n = read_in(r, c, s);
    if (n > 0) {
      c->last_active = r->now;
      /*
       * recv() takes all the socket holds, up to the buffer's size: one that
       * left room emptied it, and what arrives later is a new edge. So the
       * recv() that would only say EAGAIN is not made, unless a FIN may wait
       * behind these bytes with no edge of its own to come (greedy). A splice
       * can stop short for want of pipe slots: it proves nothing.
       */
      if (!c->greedy[s] && d->in_pipe == 0 && d->buf_len < COPY_SIZE) c->readable[s] = false;
    } else if (n == 0) {
      d->eof = true;
    } else if (errno == EAGAIN) {
      c->readable[s] = c->greedy[s] = false; /* until EPOLLIN */
      break;
    } else if (errno != EINTR) {
      conn_end(r, c, error_of(s), errno);
      return false;
    }
  }
  /* An idle direction holds no pipe and no buffer. */
  if (!pending(d)) {
    pool_give(&r->pool, &d->pipe, true);
    drop_buffer(r, d);
  }
  return true;
}

void conn_pump(struct relay *r, struct relay_conn *c) {
  if (!pump_dir(r, c, SIDE_CLIENT) || !pump_dir(r, c, SIDE_TARGET)) return;
  if (c->dir[SIDE_CLIENT].shut && c->dir[SIDE_TARGET].shut) conn_end(r, c, RELAY_CLOSED, 0);
}

void conn_adopt(struct relay *r, struct relay_conn *c) {
  c->adopted = true;
  list_add_tail(&r->all, &c->all);
  if (c->state == CONN_DIALLING) {
    /* A client that reset before it was adopted (the event kept, not handled) costs no connect. */
    if (c->early[SIDE_CLIENT] & EPOLLERR) conn_event(r, c, SIDE_CLIENT, EPOLLERR);
    if (!c->ended) dial_start(r, c);
    return;
  }
  conn_begin(r, c, true);
}

/* target_readable: whether the target may have sent already (a dialled one's connect event says). */
void conn_begin(struct relay *r, struct relay_conn *c, bool target_readable) {
  c->state = CONN_RELAYING;
  c->last_active = r->now;
  if (c->idle_ms >= 0) wheel_arm(&r->wheel, &c->timer, r->now + c->idle_ms);
  /* Watched for readiness from now, before the pump: an edge during it is not missed. A dialled target is already. */
  for (int s = 0; s < 2; s++) {
    if (c->watching[s]) continue;
    c->watching[s] = true;
    struct epoll_event ev = {.events = RELAY_WATCH, .data.ptr = (void *)((uintptr_t)c | (uintptr_t)s)};
    if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, c->fd[s], &ev) != 0) {
      conn_end(r, c, error_of(s), errno);
      return;
    }
  }
  /*
   * Events that came before were not acted on: every readiness flag starts
   * set, but where the events seen say there is nothing to read (what comes
   * later is an edge of its own), and no FIN to read for: recv()s that would
   * say EAGAIN saved. A dialled client was watched for everything from dial()
   * on (`early`); a target, from its connect on (target_readable).
   */
  for (int s = 0; s < 2; s++) c->readable[s] = c->writable[s] = c->greedy[s] = true;
  if (c->own_client) {
    uint32_t seen = c->early[SIDE_CLIENT];
    c->readable[SIDE_CLIENT] = (seen & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    c->greedy[SIDE_CLIENT] = (seen & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  }
  c->readable[SIDE_TARGET] = c->greedy[SIDE_TARGET] = target_readable;
  conn_pump(r, c);
}

void conn_event(struct relay *r, struct relay_conn *c, int side, uint32_t events) {
  if (c->state != CONN_RELAYING) {
    if (side == SIDE_TARGET) {
      if (c->state == CONN_DIALLING) dial_event(r, c, events);
      return;
    }
    c->early[SIDE_CLIENT] |= events; /* for conn_begin() */
  }
  if (events & EPOLLERR) {
    /* A reset or a timeout ends it at once, also while a paused direction reads nothing. */
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd[side], SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      conn_end(r, c, error_of(side), err);
      return;
    }
  }
  /* The client, while no target is connected: only a reset ends it (its bytes, and a FIN, wait in the socket). */
  if (c->state != CONN_RELAYING) return;
  /* After a hang-up, a read says EOF or the error, and a write with bytes pending says EPIPE. */
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->readable[side] = true;
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->greedy[side] = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->writable[side] = true;
  conn_pump(r, c);
}

/* Bytes of this connection not yet acknowledged by the peer they go to: a slow reader, not silence. */
static bool in_flight(const struct relay_conn *c) {
  const char *syscall, *detail;
  for (int s = 0; s < 2; s++)
    if (pending(&c->dir[s]) || sy_tcp_outq(c->fd[s], &syscall, &detail) > 0) return true;
  return false;
}

void conn_idle_due(struct relay *r, struct relay_conn *c) {
  if (c->state == CONN_DIALLING) return dial_timed_out(r, c);
  int64_t quiet_until = c->last_active + c->idle_ms;
  if (quiet_until > r->now)
    wheel_arm(&r->wheel, &c->timer, quiet_until);
  else if (in_flight(c))
    wheel_arm(&r->wheel, &c->timer, r->now + c->idle_ms);
  else
    conn_end(r, c, RELAY_IDLE_TIMEOUT, 0);
}

void conn_end(struct relay *r, struct relay_conn *c, enum relay_reason reason, int err) {
  if (c->ended) return;
  c->ended = true;
  c->reason = reason;
  c->err = err;
  for (int s = 0; s < 2; s++) {
    /*
     * No target fd while waiting for a redial. Closing alone would leave the
     * registration while a dup lives elsewhere (JS's fds may have dups: add()'s
     * are Node's sockets'); a target the thread connected itself has none.
     */
    if (c->fd[s] >= 0) {
      if (!(s == SIDE_CLIENT ? c->own_client : c->own_target)) epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->fd[s], NULL);
      close(c->fd[s]);
      c->fd[s] = -1;
    }
    pool_give(&r->pool, &c->dir[s].pipe, c->dir[s].in_pipe == 0);
    drop_buffer(r, &c->dir[s]);
  }
  list_del(&c->all);
  list_del(&c->more);
  list_del(&c->keepalive);
  wheel_disarm(&r->wheel, &c->timer);
  pthread_mutex_lock(&r->mu);
  relay_slot_free(r, c);
  list_del(&c->shut);
  list_del(&c->redial);
  pthread_mutex_unlock(&r->mu);
  /* Freed by the JS thread after done(): not before this turn's remaining events are handled. */
  c->next = NULL;
  *r->zombies_tail = c;
  r->zombies_tail = &c->next;
}

void conn_free(struct relay_conn *c, bool close_fds) {
  for (int s = 0; s < 2; s++) {
    if (close_fds && c->fd[s] >= 0) close(c->fd[s]);
    if (c->dir[s].pipe.r >= 0) {
      close(c->dir[s].pipe.r);
      close(c->dir[s].pipe.w);
    }
    free(c->dir[s].buf);
  }
  free(c);
}
