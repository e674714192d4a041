#include "relay_wheel.h"

static int64_t tick_of(int64_t ms) { return ms / RELAY_TICK_MS; }

void wheel_init(struct relay_wheel *w, int64_t now) {
  for (int i = 0; i < RELAY_WHEEL_SLOTS; i++) list_init(&w->slot[i]);
  list_init(&w->due);
  w->tick = tick_of(now);
  w->armed = 0;
}

void wheel_arm(struct relay_wheel *w, struct relay_wheel_entry *e, int64_t deadline) {
  wheel_disarm(w, e);
  e->deadline = deadline;
  /* The first tick at or after the deadline, but never one already looked at (it would wait a round). */
  int64_t t = tick_of(deadline + RELAY_TICK_MS - 1);
  if (t <= w->tick) t = w->tick + 1;
  list_add_tail(&w->slot[t % RELAY_WHEEL_SLOTS], &e->link);
  w->armed++;
}

void wheel_disarm(struct relay_wheel *w, struct relay_wheel_entry *e) {
  if (!list_linked(&e->link)) return;
  list_del(&e->link);
  w->armed--;
}

int wheel_timeout_ms(const struct relay_wheel *w, int64_t now) {
  if (w->armed == 0) return -1;
  if (!list_empty(&w->due)) return 0;
  int64_t wait = (w->tick + 1) * RELAY_TICK_MS - now;
  return wait < 0 ? 0 : (int)wait;
}

void wheel_advance(struct relay_wheel *w, int64_t now) {
  int64_t cur = tick_of(now);
  /* After a stall of more than a round, one look at every slot covers all. */
  if (cur - w->tick > RELAY_WHEEL_SLOTS) w->tick = cur - RELAY_WHEEL_SLOTS;
  for (int64_t t = w->tick + 1; t <= cur; t++) {
    struct relay_link *head = &w->slot[t % RELAY_WHEEL_SLOTS];
    for (struct relay_link *l = head->next, *next; l != head; l = next) {
      next = l->next;
      /* Others here are a round or more ahead. */
      if (RELAY_OWNER(l, struct relay_wheel_entry, link)->deadline > now) continue;
      list_del(l);
      list_add_tail(&w->due, l);
    }
  }
  w->tick = cur;
}

struct relay_wheel_entry *wheel_pop_due(struct relay_wheel *w) {
  if (list_empty(&w->due)) return NULL;
  struct relay_wheel_entry *e = RELAY_OWNER(w->due.next, struct relay_wheel_entry, link);
  wheel_disarm(w, e);
  return e;
}
