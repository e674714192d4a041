/*
 * Empty pipes shared by every direction of every connection (epoll thread
 * only). A direction holds a pipe only while bytes are in it: 10,000 idle
 * connections hold none, and a busy process keeps at most `max_free` spare.
 */
#ifndef SWITCHYARD_RELAY_POOL_H
#define SWITCHYARD_RELAY_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay_pipe {
  int r, w; /* -1: none */
};

struct relay_pool {
  struct relay_pipe *free;
  size_t max_free;
  int pipe_size; /* F_SETPIPE_SZ of new pipes; 0: the kernel's default (64 KiB) */
  /* Read by other threads for stats: relaxed atomics. */
  uint64_t nfree, busy;
};

int pool_init(struct relay_pool *p, size_t max_free, int pipe_size); /* 0 or ENOMEM */
/* An empty pipe, from the free list or new; 0 or the errno of pipe2 (EMFILE, ENFILE ...). */
int pool_take(struct relay_pool *p, struct relay_pipe *out);
/* Back to the free list if `empty` and there is room; closed otherwise. Sets *pipe to none. */
void pool_give(struct relay_pool *p, struct relay_pipe *pipe, bool empty);
void pool_destroy(struct relay_pool *p);

#endif
