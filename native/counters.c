/*
 * Connection counters shared by the supervisor and its workers: one memfd,
 * mapped MAP_SHARED by every process, of int64 words updated with atomics.
 *
 *   words [0, SLOTS)                      per app slot: open connections, all workers
 *   words [SLOTS * (1 + row), +SLOTS)     per worker row: that worker's share
 *
 * A worker counts into its row first and then into the app's total, so that a
 * worker killed between the two leaves its row, which the supervisor settles
 * (subtracts from the totals) once the worker has exited: a SIGKILL can cost
 * at most one connection over a limit, never capacity for good.
 *
 * Per client (MaxConnectionsPerClient), an open-addressing table of BUCKETS
 * words, each a 48-bit key (app slot and client address, hashed by the caller)
 * and a 16-bit count, changed by one compare-and-swap; a bucket whose count
 * falls to 0 is free again. Each row keeps its share of every bucket (uint16)
 * for the same settling. A client that finds no bucket within PROBES of its
 * home is let through (counted by the caller): the table is full.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "napi_util.h"

#define SLOTS SY_COUNTER_SLOTS
#define ROWS SY_COUNTER_ROWS
#define BUCKETS SY_CLIENT_BUCKETS
/* How far from its home bucket a client's entry may be. */
#define PROBES 32
/* Per-app totals and per-worker rows, then the client buckets, then each row's share of every bucket. */
#define WORDS ((size_t)SLOTS * (1 + ROWS) + BUCKETS)
#define BYTES (WORDS * sizeof(int64_t) + (size_t)ROWS * BUCKETS * sizeof(uint16_t))

typedef struct {
  int64_t *words;
} table_t;

static void table_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  table_t *t = data;
  munmap(t->words, BYTES);
  free(t);
}

/* counterTableCreate() -> fd of a new memfd sized for the table, close-on-exec. */
static napi_value table_create(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = memfd_create("switchyard-counters", MFD_CLOEXEC);
  if (fd < 0) return sy_throw_errno(env, errno, "memfd_create", NULL);
  if (ftruncate(fd, (off_t)BYTES) != 0) {
    int err = errno;
    close(fd);
    return sy_throw_errno(env, err, "ftruncate", NULL);
  }
  napi_value result;
  NAPI_CALL(env, napi_create_int32(env, fd, &result));
  return result;
}

/* counterTableMap(fd) -> an external for the calls below; unmapped when collected. */
static napi_value table_map(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  void *words = mmap(NULL, BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (words == MAP_FAILED) return sy_throw_errno(env, errno, "mmap", NULL);
  table_t *t = malloc(sizeof *t);
  if (t == NULL) {
    munmap(words, BYTES);
    return sy_throw_errno(env, ENOMEM, "malloc", NULL);
  }
  t->words = words;
  napi_value result;
  if (napi_create_external(env, t, table_finalize, NULL, &result) != napi_ok) {
    table_finalize(env, t, NULL);
    return sy_throw_errno(env, ENOMEM, "napi_create_external", NULL);
  }
  return result;
}

static bool get_table(napi_env env, napi_value value, table_t **out) {
  napi_valuetype type;
  if (!sy_napi_ok(env, napi_typeof(env, value, &type), "napi_typeof")) return false;
  if (type != napi_external) return sy_throw_arg(env, false, "table", "a counter table");
  return sy_napi_ok(env, napi_get_value_external(env, value, (void **)out), "napi_get_value_external");
}

static bool get_slot_row(napi_env env, napi_value *argv, int64_t *slot, int64_t *row) {
  return sy_get_int(env, argv[1], "slot", 0, SLOTS - 1, slot) && sy_get_int(env, argv[2], "row", 0, ROWS - 1, row);
}

static uint64_t *client_buckets(table_t *t) {
  return (uint64_t *)&t->words[(size_t)SLOTS * (1 + ROWS)];
}

static uint16_t *row_shares(table_t *t, int64_t row) {
  return (uint16_t *)&t->words[WORDS] + (size_t)row * BUCKETS;
}

/* Takes `n` off a bucket's count; the bucket is free again at 0. */
static void bucket_sub(uint64_t *bucket, uint64_t n) {
  uint64_t seen = __atomic_load_n(bucket, __ATOMIC_SEQ_CST);
  for (;;) {
    uint64_t count = seen & 0xffff;
    uint64_t next = count <= n ? 0 : seen - n;
    if (__atomic_compare_exchange_n(bucket, &seen, next, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return;
  }
}

/* One more in `bucket` if it holds `key` with fewer than `limit`: 1 done, 0 at the limit, -1 another key. */
static int bucket_add(uint64_t *bucket, uint64_t key, uint64_t limit) {
  uint64_t seen = __atomic_load_n(bucket, __ATOMIC_SEQ_CST);
  for (;;) {
    uint64_t next;
    if (seen == 0) next = (key << 16) | 1;
    else if ((seen >> 16) != key) return -1;
    else if ((seen & 0xffff) >= limit) return 0;
    else next = seen + 1;
    if (__atomic_compare_exchange_n(bucket, &seen, next, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 1;
  }
}

/*
 * clientAcquire(table, key, row, limit) -> the bucket now counting one more
 * connection of this client, -1 if the client is at `limit`, -2 if the table
 * has no room near the key's home (the caller lets the connection through).
 * An existing entry is looked for in every probe before a free bucket is
 * taken, so one client never holds two entries unless two workers claim at once.
 */
static napi_value client_acquire(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 4, argv);
  table_t *t;
  int64_t key, row, limit;
  if (!get_table(env, argv[0], &t) || !sy_get_int(env, argv[1], "key", 1, ((int64_t)1 << 48) - 1, &key)) return NULL;
  if (!sy_get_int(env, argv[2], "row", 0, ROWS - 1, &row) || !sy_get_int(env, argv[3], "limit", 1, 0xffff, &limit)) return NULL;
  uint64_t *buckets = client_buckets(t);
  uint16_t *shares = row_shares(t, row);
  size_t home = (size_t)key % BUCKETS;
  int64_t found = -2;
  for (int pass = 0; pass < 2 && found == -2; pass++) {
    for (size_t i = 0; i < PROBES; i++) {
      size_t b = (home + i) % BUCKETS;
      uint64_t seen = __atomic_load_n(&buckets[b], __ATOMIC_SEQ_CST);
      /* First pass: only the client's own entry; second: a free bucket too. */
      if (pass == 0 ? (seen >> 16) != (uint64_t)key || seen == 0 : seen != 0 && (seen >> 16) != (uint64_t)key) continue;
      __atomic_add_fetch(&shares[b], 1, __ATOMIC_SEQ_CST);
      int r = bucket_add(&buckets[b], (uint64_t)key, (uint64_t)limit);
      if (r == 1) {
        found = (int64_t)b;
        break;
      }
      __atomic_sub_fetch(&shares[b], 1, __ATOMIC_SEQ_CST);
      if (r == 0) {
        found = -1;
        break;
      }
    }
  }
  napi_value result;
  NAPI_CALL(env, napi_create_int64(env, found, &result));
  return result;
}

/* clientRelease(table, bucket, row): one connection counted by clientAcquire has ended. */
static napi_value client_release(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 3, argv);
  table_t *t;
  int64_t bucket, row;
  if (!get_table(env, argv[0], &t) || !sy_get_int(env, argv[1], "bucket", 0, BUCKETS - 1, &bucket)) return NULL;
  if (!sy_get_int(env, argv[2], "row", 0, ROWS - 1, &row)) return NULL;
  __atomic_sub_fetch(&row_shares(t, row)[bucket], 1, __ATOMIC_SEQ_CST);
  bucket_sub(&client_buckets(t)[bucket], 1);
  return NULL;
}

/* counterAcquire(table, slot, row, limit) -> true if the app's total was below limit (now counted). */
static napi_value counter_acquire(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 4, argv);
  table_t *t;
  int64_t slot, row, limit;
  if (!get_table(env, argv[0], &t) || !get_slot_row(env, argv, &slot, &row)) return NULL;
  if (!sy_get_int(env, argv[3], "limit", 1, INT32_MAX, &limit)) return NULL;
  int64_t *total = &t->words[slot];
  int64_t *mine = &t->words[SLOTS * (1 + row) + slot];
  __atomic_add_fetch(mine, 1, __ATOMIC_SEQ_CST);
  int64_t seen = __atomic_load_n(total, __ATOMIC_SEQ_CST);
  bool ok = false;
  while (seen < limit) {
    if (__atomic_compare_exchange_n(total, &seen, seen + 1, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
      ok = true;
      break;
    }
  }
  if (!ok) __atomic_sub_fetch(mine, 1, __ATOMIC_SEQ_CST);
  napi_value result;
  NAPI_CALL(env, napi_get_boolean(env, ok, &result));
  return result;
}

/* counterRelease(table, slot, row): one connection counted by counterAcquire has ended. */
static napi_value counter_release(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 3, argv);
  table_t *t;
  int64_t slot, row;
  if (!get_table(env, argv[0], &t) || !get_slot_row(env, argv, &slot, &row)) return NULL;
  __atomic_sub_fetch(&t->words[slot], 1, __ATOMIC_SEQ_CST);
  __atomic_sub_fetch(&t->words[SLOTS * (1 + row) + slot], 1, __ATOMIC_SEQ_CST);
  return NULL;
}

/* counterRead(table, slot) -> the app's open connections over all workers. */
static napi_value counter_read(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 2, argv);
  table_t *t;
  int64_t slot;
  if (!get_table(env, argv[0], &t) || !sy_get_int(env, argv[1], "slot", 0, SLOTS - 1, &slot)) return NULL;
  napi_value result;
  NAPI_CALL(env, napi_create_int64(env, __atomic_load_n(&t->words[slot], __ATOMIC_SEQ_CST), &result));
  return result;
}

/* counterSettle(table, row): takes an exited worker's counts out of the totals and clears its row. */
static napi_value counter_settle(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 2, argv);
  table_t *t;
  int64_t row;
  if (!get_table(env, argv[0], &t) || !sy_get_int(env, argv[1], "row", 0, ROWS - 1, &row)) return NULL;
  int64_t *mine = &t->words[SLOTS * (1 + row)];
  for (size_t slot = 0; slot < SLOTS; slot++) {
    int64_t held = __atomic_exchange_n(&mine[slot], 0, __ATOMIC_SEQ_CST);
    if (held != 0) __atomic_sub_fetch(&t->words[slot], held, __ATOMIC_SEQ_CST);
  }
  uint16_t *shares = row_shares(t, row);
  for (size_t b = 0; b < BUCKETS; b++) {
    uint16_t held = __atomic_exchange_n(&shares[b], 0, __ATOMIC_SEQ_CST);
    if (held != 0) bucket_sub(&client_buckets(t)[b], held);
  }
  return NULL;
}

napi_status switchyard_init_counters(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      SY_FN("counterTableCreate", table_create), SY_FN("counterTableMap", table_map),
      SY_FN("counterAcquire", counter_acquire), SY_FN("counterRelease", counter_release),
      SY_FN("counterRead", counter_read),       SY_FN("counterSettle", counter_settle),
      SY_FN("clientAcquire", client_acquire),   SY_FN("clientRelease", client_release),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
