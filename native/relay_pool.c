#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "relay_pool.h"

static void set_stat(uint64_t *v, uint64_t x) { __atomic_store_n(v, x, __ATOMIC_RELAXED); }

int pool_init(struct relay_pool *p, size_t max_free, int pipe_size) {
  p->max_free = max_free;
  p->pipe_size = pipe_size;
  p->nfree = p->busy = 0;
  p->free = max_free > 0 ? calloc(max_free, sizeof *p->free) : NULL;
  return max_free > 0 && p->free == NULL ? ENOMEM : 0;
}

int pool_take(struct relay_pool *p, struct relay_pipe *out) {
  if (p->nfree > 0) {
    *out = p->free[p->nfree - 1];
    set_stat(&p->nfree, p->nfree - 1);
  } else {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return errno;
    out->r = fds[0];
    out->w = fds[1];
    /* Refused past pipe-max-size or the user's pipe-user-pages-soft: the default size does too. */
    if (p->pipe_size > 0) (void)fcntl(fds[1], F_SETPIPE_SZ, p->pipe_size);
  }
  set_stat(&p->busy, p->busy + 1);
  return 0;
}

void pool_give(struct relay_pool *p, struct relay_pipe *pipe, bool empty) {
  if (pipe->r < 0) return;
  /* A pipe with bytes left in it would hand them to the next connection. */
  if (empty && p->nfree < p->max_free) {
    p->free[p->nfree] = *pipe;
    set_stat(&p->nfree, p->nfree + 1);
  } else {
    close(pipe->r);
    close(pipe->w);
  }
  set_stat(&p->busy, p->busy - 1);
  pipe->r = pipe->w = -1;
}

void pool_destroy(struct relay_pool *p) {
  for (size_t i = 0; i < p->nfree; i++) {
    close(p->free[i].r);
    close(p->free[i].w);
  }
  free(p->free);
  p->free = NULL;
  p->nfree = 0;
}
