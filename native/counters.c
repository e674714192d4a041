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
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "napi_util.h"

#define SLOTS SY_COUNTER_SLOTS
#define ROWS SY_COUNTER_ROWS
#define WORDS ((size_t)SLOTS * (1 + ROWS))

typedef struct {
  int64_t *words;
} table_t;

static void table_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  table_t *t = data;
  munmap(t->words, WORDS * sizeof(int64_t));
  free(t);
}

/* counterTableCreate() -> fd of a new memfd sized for the table, close-on-exec. */
static napi_value table_create(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = memfd_create("switchyard-counters", MFD_CLOEXEC);
  if (fd < 0) return sy_throw_errno(env, errno, "memfd_create", NULL);
  if (ftruncate(fd, (off_t)(WORDS * sizeof(int64_t))) != 0) {
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
  void *words = mmap(NULL, WORDS * sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (words == MAP_FAILED) return sy_throw_errno(env, errno, "mmap", NULL);
  table_t *t = malloc(sizeof *t);
  if (t == NULL) {
    munmap(words, WORDS * sizeof(int64_t));
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
  return NULL;
}

napi_status switchyard_init_counters(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      SY_FN("counterTableCreate", table_create), SY_FN("counterTableMap", table_map),
      SY_FN("counterAcquire", counter_acquire), SY_FN("counterRelease", counter_release),
      SY_FN("counterRead", counter_read),       SY_FN("counterSettle", counter_settle),
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
