/*
 * The relay's JS side (native/relay.ts is its facade):
 *
 *   relayCreate(onEvents, maxFreePipes, pipeSize, forceCopy, keepAliveIdleS, keepAliveIntervalS, keepAliveProbes)
 *     -> {add, dial, redial, listen, unlisten, takeAccepted, shutdown, shutdownAll, close, stats}
 *   add(clientFd, targetFd, idleMs or -1, toTarget?, toClient?) -> id
 *
 * onEvents(ends, events, accepted) runs on the JS thread through a threadsafe
 * function (relay_deliver.c), which is ref'd only while connections are
 * open: the relay alone never keeps the process alive. That function holds
 * the facade, which holds this object: it is collected only after close() has
 * released the function (or at teardown).
 */
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "fd_util.h"
#include "napi_util.h"
#include "relay.h"
#include "tcp.h"

/* IdleTimeoutMs allows far less (config/schema.ts); this only keeps the arithmetic in range. */
#define MAX_IDLE_MS ((int64_t)1 << 40)
#define MAX_ID (((int64_t)1 << 53) - 1)

static void relay_cleanup_hook(void *arg);

struct relay *relay_get_self(napi_env env, napi_callback_info info, size_t want, napi_value *argv, bool allow_closed) {
  size_t argc = want;
  napi_value self;
  void *data = NULL;
  if (!sy_napi_ok(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL), "napi_get_cb_info")) return NULL;
  if (!sy_napi_ok(env, napi_unwrap(env, self, &data), "napi_unwrap")) return NULL;
  struct relay *r = data;
  if (r->closed && !allow_closed) {
    napi_throw_error(env, "ERR_RELAY_CLOSED", "relay: already closed");
    return NULL;
  }
  return r;
}

bool relay_get_bytes(napi_env env, napi_value value, const char *name, struct relay_dir *d) {
  napi_valuetype type;
  bool is_buffer;
  void *data;
  size_t len;
  if (!sy_napi_ok(env, napi_typeof(env, value, &type), "napi_typeof")) return false;
  if (type == napi_undefined || type == napi_null) return true;
  if (!sy_napi_ok(env, napi_is_buffer(env, value, &is_buffer), "napi_is_buffer")) return false;
  if (!is_buffer) return sy_throw_arg(env, false, name, "a Buffer");
  if (!sy_napi_ok(env, napi_get_buffer_info(env, value, &data, &len), "napi_get_buffer_info")) return false;
  if (len == 0) return true;
  if ((d->buf = malloc(len)) == NULL) {
    sy_throw_errno(env, ENOMEM, "malloc", name);
    return false;
  }
  memcpy(d->buf, data, len);
  d->buf_len = len;
  return true;
}

bool relay_get_idle(napi_env env, napi_value value, int64_t *idle) {
  if (!sy_get_int(env, value, "idleTimeoutMs", -1, MAX_IDLE_MS, idle)) return false;
  if (*idle == 0) return sy_throw_arg(env, true, "idleTimeoutMs", "an integer >= 1, or -1 for none");
  return true;
}

/*
 * add(): an error or a hang-up until conn_begin() watches for everything
 * (RELAY_WATCH). dial(): everything from now on, and no EPOLL_CTL_MOD later:
 * readiness before the target is connected is only noted (`early`), and
 * conn_begin() reads the client if it says there is something to read.
 */
static int watch(struct relay *r, struct relay_conn *c, int side) {
  bool all = c->state == CONN_DIALLING;
  struct epoll_event ev = {.events = all ? RELAY_WATCH : EPOLLET, .data.ptr = (void *)((uintptr_t)c | (uintptr_t)side)};
  if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, c->fd[side], &ev) != 0) return -1;
  c->watching[side] = all;
  return 0;
}

static napi_value throw_freeing(napi_env env, struct relay_conn *c, int err, const char *syscall, const char *detail) {
  conn_free(c, false);
  return sy_throw_errno(env, err, syscall, detail);
}

struct relay_conn *relay_conn_new(napi_env env, int client, int target, int64_t idle) {
  struct relay_conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    sy_throw_errno(env, ENOMEM, "calloc", "relay connection");
    return NULL;
  }
  c->fd[SIDE_CLIENT] = client;
  c->fd[SIDE_TARGET] = target;
  for (int s = 0; s < 2; s++) {
    c->readable[s] = c->writable[s] = true;
    c->dir[s].pipe.r = c->dir[s].pipe.w = -1;
  }
  c->idle_ms = idle;
  return c;
}

/* Frees c on failure; its fds stay open and the caller's. */
napi_value relay_submit(napi_env env, struct relay *r, struct relay_conn *c) {
  const char *syscall = NULL;
  int err = r->started ? 0 : relay_start(r, &syscall);
  if (err != 0) return throw_freeing(env, c, err, syscall, NULL);

  pthread_mutex_lock(&r->mu);
  err = relay_slot_alloc(r, c);
  pthread_mutex_unlock(&r->mu);
  if (err != 0) return throw_freeing(env, c, err, "malloc", "relay ids");
  if (watch(r, c, SIDE_CLIENT) != 0) {
    err = errno; /* EEXIST: the relay carries that fd already; EPERM: not a socket */
    pthread_mutex_lock(&r->mu);
    relay_slot_free(r, c);
    pthread_mutex_unlock(&r->mu);
    return throw_freeing(env, c, err, "epoll_ctl", NULL);
  }
  if (c->fd[SIDE_TARGET] >= 0 && watch(r, c, SIDE_TARGET) != 0) {
    err = errno;
    epoll_ctl(r->epfd, EPOLL_CTL_DEL, c->fd[SIDE_CLIENT], NULL);
    /* The thread may hold an event for the client from before the DEL: it frees c after that batch. */
    for (int s = 0; s < 2; s++) {
      free(c->dir[s].buf);
      c->dir[s].buf = NULL;
    }
    pthread_mutex_lock(&r->mu);
    relay_slot_free(r, c);
    c->next = r->discards;
    r->discards = c;
    pthread_mutex_unlock(&r->mu);
    relay_wake(r);
    return sy_throw_errno(env, err, "epoll_ctl", NULL);
  }

  for (int s = 0; s < 2; s++)
    if (c->dir[s].buf != NULL) relay_stat_add(&r->buffers, 1);
  double id = (double)c->id;
  pthread_mutex_lock(&r->mu);
  /*
   * Added to a list not yet taken: the wake-up that its first add wrote has not
   * been acted on, and the thread takes the whole list when it is. One eventfd
   * write per batch of adds, not per connection.
   */
  bool wake = r->adds == NULL;
  *r->adds_tail = c;
  r->adds_tail = &c->next;
  pthread_mutex_unlock(&r->mu);
  if (wake) relay_wake(r);
  if (r->js_open++ == 0) napi_ref_threadsafe_function(env, r->tsfn);
  napi_value result;
  NAPI_CALL(env, napi_create_double(env, id, &result));
  return result;
}

/* On any failure the fds stay open and the caller's (to carry the connection some other way). */
static napi_value m_add(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  struct relay *r = relay_get_self(env, info, 5, argv, false);
  int client, target;
  int64_t idle;
  if (r == NULL || !sy_get_fd(env, argv[0], "clientFd", &client) || !sy_get_fd(env, argv[1], "targetFd", &target) ||
      !relay_get_idle(env, argv[2], &idle))
    return NULL;
  if (client == target) {
    sy_throw_arg(env, false, "targetFd", "another fd than clientFd");
    return NULL;
  }
  struct relay_conn *c = relay_conn_new(env, client, target, idle);
  if (c == NULL) return NULL;
  if (!relay_get_bytes(env, argv[3], "toTarget", &c->dir[SIDE_CLIENT]) || !relay_get_bytes(env, argv[4], "toClient", &c->dir[SIDE_TARGET])) {
    conn_free(c, false);
    return NULL;
  }
  if (sy_set_nonblock(client, true) != 0 || sy_set_nonblock(target, true) != 0) return throw_freeing(env, c, errno, "fcntl", "O_NONBLOCK");
  return relay_submit(env, r, c);
}

static napi_value m_shutdown(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  struct relay *r = relay_get_self(env, info, 1, argv, true);
  int64_t id;
  if (r == NULL || !sy_get_int(env, argv[0], "id", 0, MAX_ID, &id) || r->closed) return NULL;
  pthread_mutex_lock(&r->mu);
  struct relay_conn *c = relay_slot_find(r, (uint64_t)id);
  if (c != NULL && !list_linked(&c->shut)) list_add_tail(&r->shut, &c->shut);
  pthread_mutex_unlock(&r->mu);
  if (c != NULL) relay_wake(r);
  return NULL;
}

static napi_value m_shutdown_all(napi_env env, napi_callback_info info) {
  struct relay *r = relay_get_self(env, info, 0, NULL, true);
  if (r == NULL || !r->started) return NULL;
  pthread_mutex_lock(&r->mu);
  r->shut_all_before = r->seq + 1;
  pthread_mutex_unlock(&r->mu);
  relay_wake(r);
  return NULL;
}

static napi_value m_close(napi_env env, napi_callback_info info) {
  struct relay *r = relay_get_self(env, info, 0, NULL, true);
  if (r == NULL || r->closed) return NULL;
  if (r->js_open > 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "relay: %zu connections still open", r->js_open);
    napi_throw_error(env, "ERR_RELAY_BUSY", msg);
    return NULL;
  }
  relay_stop(r);
  pool_destroy(&r->pool);
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
  if (r->hooked) napi_remove_env_cleanup_hook(env, relay_cleanup_hook, r);
  r->hooked = false;
  r->closed = true;
  return NULL;
}

static bool set_stat(napi_env env, napi_value obj, const char *name, uint64_t v) {
  napi_value value;
  return sy_napi_ok(env, napi_create_double(env, (double)v, &value), "napi_create_double") &&
         sy_napi_ok(env, napi_set_named_property(env, obj, name, value), "napi_set_named_property");
}

static napi_value m_stats(napi_env env, napi_callback_info info) {
  struct relay *r = relay_get_self(env, info, 0, NULL, true);
  if (r == NULL) return NULL;
  pthread_mutex_lock(&r->mu);
  uint64_t live = r->live;
  uint64_t waiting = r->naccepted;
  pthread_mutex_unlock(&r->mu);
  napi_value obj;
  NAPI_CALL(env, napi_create_object(env, &obj));
  if (!set_stat(env, obj, "open", live) || !set_stat(env, obj, "pipesFree", relay_stat_get(&r->pool.nfree)) ||
      !set_stat(env, obj, "pipesBusy", relay_stat_get(&r->pool.busy)) ||
      !set_stat(env, obj, "buffers", relay_stat_get(&r->buffers)) ||
      !set_stat(env, obj, "copyReads", relay_stat_get(&r->copy_reads)) ||
      !set_stat(env, obj, "pipeFailures", relay_stat_get(&r->pipe_failures)) ||
      !set_stat(env, obj, "acceptedWaiting", waiting) ||
      !set_stat(env, obj, "holding", __atomic_load_n(&r->holding, __ATOMIC_ACQUIRE) ? 1 : 0))
    return NULL;
  return obj;
}

/* The environment is going away (process exit, a worker thread's end): stop the thread before Node frees the tsfn. */
static void relay_cleanup_hook(void *arg) {
  struct relay *r = arg;
  r->hooked = false;
  relay_stop(r);
  r->closed = true;
}

static void relay_free(napi_env env, struct relay *r) {
  relay_stop(r);
  pool_destroy(&r->pool);
  if (r->hooked) napi_remove_env_cleanup_hook(env, relay_cleanup_hook, r);
  pthread_mutex_destroy(&r->mu);
  pthread_mutex_destroy(&r->listen_mu);
  free(r->slots);
  free(r);
}

static void relay_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  relay_free(env, data);
}

static napi_value relay_create(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 7, argv);
  napi_valuetype type;
  int64_t max_free, pipe_size, keep_idle, keep_interval, keep_probes;
  bool force_copy;
  NAPI_CALL(env, napi_typeof(env, argv[0], &type));
  if (type != napi_function) {
    sy_throw_arg(env, false, "onEvents", "of type function");
    return NULL;
  }
  if (!sy_get_int(env, argv[1], "maxFreePipes", 0, 65536, &max_free) ||
      !sy_get_int(env, argv[2], "pipeSize", 0, 1 << 30, &pipe_size) ||
      !sy_get_int(env, argv[4], "keepAliveIdleS", 1, SY_KEEPALIVE_TIME_MAX, &keep_idle) ||
      !sy_get_int(env, argv[5], "keepAliveIntervalS", 1, SY_KEEPALIVE_TIME_MAX, &keep_interval) ||
      !sy_get_int(env, argv[6], "keepAliveProbes", 1, SY_KEEPALIVE_PROBES_MAX, &keep_probes))
    return NULL;
  NAPI_CALL(env, napi_get_value_bool(env, argv[3], &force_copy));

  struct relay *r = calloc(1, sizeof *r);
  if (r == NULL) return sy_throw_errno(env, ENOMEM, "calloc", "relay");
  r->force_copy = force_copy;
  r->keep_idle_s = (int)keep_idle;
  r->keep_interval_s = (int)keep_interval;
  r->keep_probes = (int)keep_probes;
  r->epfd = r->evfd = r->reserve_fd = -1;
  r->free_slot = RELAY_NO_SLOT;
  r->adds_tail = &r->adds;
  r->done_tail = &r->done;
  r->events_tail = &r->events;
  r->zombies_tail = &r->zombies;
  list_init(&r->shut);
  list_init(&r->redials);
  list_init(&r->resting);
  list_init(&r->held);
  list_init(&r->all);
  list_init(&r->more);
  list_init(&r->keepalive_due);
  int err = pthread_mutex_init(&r->mu, NULL);
  if (err != 0) {
    free(r);
    return sy_throw_errno(env, err, "pthread_mutex_init", NULL);
  }
  if ((err = pthread_mutex_init(&r->listen_mu, NULL)) != 0) {
    pthread_mutex_destroy(&r->mu);
    free(r);
    return sy_throw_errno(env, err, "pthread_mutex_init", NULL);
  }
  if (pool_init(&r->pool, (size_t)max_free, (int)pipe_size) != 0) {
    relay_free(env, r);
    return sy_throw_errno(env, ENOMEM, "calloc", "pipe pool");
  }
  napi_value name, self;
  NAPI_CALL_GOTO(env, napi_create_string_utf8(env, "switchyard-relay", NAPI_AUTO_LENGTH, &name), fail);
  NAPI_CALL_GOTO(env, napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, r, relay_deliver, &r->tsfn), fail);
  NAPI_CALL_GOTO(env, napi_unref_threadsafe_function(env, r->tsfn), fail_tsfn);
  /* After the tsfn's own: hooks run last-added first, so the thread stops before Node frees the tsfn. */
  NAPI_CALL_GOTO(env, napi_add_env_cleanup_hook(env, relay_cleanup_hook, r), fail_tsfn);
  r->hooked = true;
  NAPI_CALL_GOTO(env, napi_create_object(env, &self), fail_tsfn);
  NAPI_CALL_GOTO(env, napi_wrap(env, self, r, relay_finalize, NULL, NULL), fail_tsfn);
  /* From here on the finalizer owns r. */
  napi_property_descriptor methods[] = {
      SY_FN("add", m_add),
      SY_FN("dial", relay_m_dial),
      SY_FN("redial", relay_m_redial),
      SY_FN("listen", relay_m_listen),
      SY_FN("unlisten", relay_m_unlisten),
      SY_FN("takeAccepted", relay_m_take_accepted),
      SY_FN("shutdown", m_shutdown),
      SY_FN("shutdownAll", m_shutdown_all),
      SY_FN("close", m_close),
      SY_FN("stats", m_stats),
  };
  NAPI_CALL(env, napi_define_properties(env, self, sizeof methods / sizeof methods[0], methods));
  return self;

fail_tsfn:
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
fail:
  relay_free(env, r);
  return NULL;
}

napi_status switchyard_init_relay(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {SY_FN("relayCreate", relay_create)};
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
