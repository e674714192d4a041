/* Intrusive doubly-linked lists: a connection sits on several at once and allocates nothing to do so. */
#ifndef SWITCHYARD_RELAY_LIST_H
#define SWITCHYARD_RELAY_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct relay_link {
  struct relay_link *prev, *next; /* NULL when on no list */
};

#define RELAY_OWNER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void list_init(struct relay_link *head) { head->prev = head->next = head; }
static inline bool list_empty(const struct relay_link *head) { return head->next == head; }
static inline bool list_linked(const struct relay_link *l) { return l->next != NULL; }

static inline void list_add_tail(struct relay_link *head, struct relay_link *l) {
  l->prev = head->prev;
  l->next = head;
  head->prev->next = l;
  head->prev = l;
}

static inline void list_del(struct relay_link *l) {
  if (l->next == NULL) return;
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->prev = l->next = NULL;
}

/* Moves every element of `from` to the (empty) `to`. */
static inline void list_take(struct relay_link *from, struct relay_link *to) {
  list_init(to);
  if (list_empty(from)) return;
  to->next = from->next;
  to->prev = from->prev;
  to->next->prev = to;
  to->prev->next = to;
  list_init(from);
}

#endif
