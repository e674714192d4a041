/*
 * What the relay's thread hands the JS thread, delivered by the threadsafe
 * function (relay_napi.c creates it): onEvents(ends, events, accepted).
 *
 *   ends     Float64Array of [id, reason, bytesIn, bytesOut, errno] per connection ended
 *   events   Float64Array of [kind, id, failure, errno] per connect that succeeded or
 *            failed; before the ends: a connection's connect comes before its end
 *   accepted whether takeAccepted() has something (relay_accept.c)
 *
 * Ended connections are freed here, once their figures are copied.
 */
#include <stdlib.h>

#include "relay.h"

#define END_FIELDS 5
#define EVENT_FIELDS 4

static napi_value float64s(napi_env env, size_t n, double **fields) {
  napi_value buffer, array;
  if (napi_create_arraybuffer(env, n * sizeof(double), (void **)fields, &buffer) != napi_ok ||
      napi_create_typedarray(env, napi_float64_array, n, buffer, 0, &array) != napi_ok)
    return NULL;
  return array;
}

/* Out of JS memory: the lists go back in front of what came since, for a later turn of the loop. */
static void put_back(struct relay *r, struct relay_conn *done, struct relay_conn *events) {
  pthread_mutex_lock(&r->mu);
  if (done != NULL) {
    struct relay_conn **tail = &done;
    while (*tail != NULL) tail = &(*tail)->next;
    *tail = r->done;
    if (r->done == NULL) r->done_tail = tail;
    r->done = done;
  }
  if (events != NULL) {
    struct relay_conn **tail = &events;
    while (*tail != NULL) tail = &(*tail)->event_next;
    *tail = r->events;
    if (r->events == NULL) r->events_tail = tail;
    r->events = events;
  }
  r->notify_pending = false;
  relay_notify_locked(r, true);
  pthread_mutex_unlock(&r->mu);
}

/* The threadsafe function's call: every connection on the done and events lists, in one batch. */
void relay_deliver(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)data;
  struct relay *r = context;
  if (env == NULL) return; /* teardown: relay_stop frees the lists */
  pthread_mutex_lock(&r->mu);
  struct relay_conn *list = r->done, *events = r->events;
  r->done = r->events = NULL;
  r->done_tail = &r->done;
  r->events_tail = &r->events;
  r->events_urgent = false;
  r->notify_pending = false;
  bool accepted = r->naccepted > 0;
  pthread_mutex_unlock(&r->mu);
  size_t n = 0, m = 0;
  for (struct relay_conn *c = list; c != NULL; c = c->next) n++;
  for (struct relay_conn *c = events; c != NULL; c = c->event_next) m++;
  if (n == 0 && m == 0 && !accepted) return;

  double *ends, *evs;
  napi_value argv[3], undefined;
  if ((argv[0] = float64s(env, n * END_FIELDS, &ends)) == NULL || (argv[1] = float64s(env, m * EVENT_FIELDS, &evs)) == NULL ||
      napi_get_boolean(env, accepted, &argv[2]) != napi_ok || napi_get_undefined(env, &undefined) != napi_ok) {
    put_back(r, list, events);
    return;
  }
  size_t i = 0;
  for (struct relay_conn *c = events; c != NULL; c = c->event_next, i += EVENT_FIELDS) {
    evs[i] = c->event;
    evs[i + 1] = (double)c->id;
    evs[i + 2] = c->dial_failure;
    evs[i + 3] = c->dial_err;
  }
  i = 0;
  for (struct relay_conn *c = list, *next; c != NULL; c = next, i += END_FIELDS) {
    next = c->next;
    ends[i] = (double)c->id;
    ends[i + 1] = c->reason;
    ends[i + 2] = (double)c->dir[SIDE_CLIENT].bytes;
    ends[i + 3] = (double)c->dir[SIDE_TARGET].bytes;
    ends[i + 4] = c->err;
    conn_free(c, false);
  }
  r->js_open -= n;
  if (n > 0 && r->js_open == 0) napi_unref_threadsafe_function(env, r->tsfn);
  /* A throw is Node's to report (the facade rethrows its callbacks' errors on a later tick). */
  napi_call_function(env, undefined, js_cb, 3, argv, NULL);
}
