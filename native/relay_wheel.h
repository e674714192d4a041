/*
 * Idle timers: a hashed timing wheel of 64 ms ticks (epoll thread only).
 * Arming, disarming and expiring cost O(1) per timer and allocate nothing,
 * and the thread wakes once a tick only while some timer is armed: 10,000
 * connections cost 10,000 list links, not a scan. A timer fires up to one
 * tick late; one further than a round (65 s) ahead is passed over once a round.
 */
#ifndef SWITCHYARD_RELAY_WHEEL_H
#define SWITCHYARD_RELAY_WHEEL_H

#include <stdint.h>

#include "relay_list.h"

#define RELAY_TICK_MS 64
#define RELAY_WHEEL_SLOTS 1024

struct relay_wheel_entry {
  struct relay_link link;
  int64_t deadline; /* ms, CLOCK_MONOTONIC */
};

struct relay_wheel {
  struct relay_link slot[RELAY_WHEEL_SLOTS];
  struct relay_link due;
  int64_t tick; /* the last tick whose slot was looked at */
  size_t armed;
};

void wheel_init(struct relay_wheel *w, int64_t now);
void wheel_arm(struct relay_wheel *w, struct relay_wheel_entry *e, int64_t deadline);
void wheel_disarm(struct relay_wheel *w, struct relay_wheel_entry *e);
/* For epoll_wait: until the next tick while any timer is armed, else -1. */
int wheel_timeout_ms(const struct relay_wheel *w, int64_t now);
/* Collects the timers due at `now`; take them one by one with wheel_pop_due(). */
void wheel_advance(struct relay_wheel *w, int64_t now);
/* A due timer, now disarmed, or NULL. */
struct relay_wheel_entry *wheel_pop_due(struct relay_wheel *w);

#endif
