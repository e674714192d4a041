/*
 * The Steering object's map edits and reads (bpf.c owns its life): the sockmap
 * of app sockets, the port map, and the per-CPU counters. Layouts in steering.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>

#include "bpf_errors.h"
#include "bpf_steering.h"
#include "napi_util.h"
#include "steering.h"

/* Counter slots fetched per BPF_MAP_LOOKUP_BATCH call. */
#define COUNTER_CHUNK 256
/* readPorts' first buffer, in entries; doubled as needed. */
#define PORTS_CHUNK 1024

static bool get_buffer(napi_env env, napi_value value, const char *name, size_t record, const uint8_t **data,
                       size_t *len) {
  bool is_buf = false;
  void *ptr = NULL;
  if (!sy_napi_ok(env, napi_is_buffer(env, value, &is_buf), "napi_is_buffer")) return false;
  if (!is_buf) return sy_throw_arg(env, false, name, "a Buffer");
  if (!sy_napi_ok(env, napi_get_buffer_info(env, value, &ptr, len), "napi_get_buffer_info")) return false;
  if (*len % record != 0) {
    char expected[64];
    snprintf(expected, sizeof expected, "a Buffer whose length is a multiple of %zu", record);
    return sy_throw_arg(env, true, name, expected);
  }
  *data = ptr;
  return true;
}

/* NULL if the key is well-formed, else why not. */
static const char *check_key(const struct steer_key *k) {
  unsigned max_addr_bits;
  if (k->family == STEER_FAMILY_V4)
    max_addr_bits = 32;
  else if (k->family == STEER_FAMILY_V6)
    max_addr_bits = 128;
  else
    return "family must be 4 or 6";
  if (k->pad != 0) return "pad must be 0";
  if (k->prefixlen < STEER_KEY_FIXED_BITS || k->prefixlen > STEER_KEY_FIXED_BITS + max_addr_bits)
    return k->family == STEER_FAMILY_V4 ? "prefixlen must be 32-64 for family 4" : "prefixlen must be 32-160 for family 6";
  if (k->family == STEER_FAMILY_V4)
    for (int i = 4; i < 16; i++)
      if (k->addr[i] != 0) return "addr[4..15] must be 0 for family 4";
  return NULL;
}

/* setSocket(slot, fd): sockets[slot] = the listening socket fd (BPF_ANY). */
napi_value steering_set_socket(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t slot;
  int fd;
  struct steering *st = get_self(env, info, 2, argv, false);
  if (st == NULL) return NULL;
  if (!sy_get_int(env, argv[0], "slot", 0, STEER_SOCKETS_MAX - 1, &slot)) return NULL;
  if (!sy_get_fd(env, argv[1], "fd", &fd)) return NULL;
  __u32 key = (__u32)slot;
  __u64 value = (__u64)(unsigned)fd;
  int rc = bpf_map_update_elem(st->sockets_fd, &key, &value, BPF_ANY);
  if (rc < 0) {
    char detail[64];
    snprintf(detail, sizeof detail, "sockets[%u] = fd %d", key, fd);
    return sy_throw_errno(env, -rc, "bpf_map_update_elem", detail);
  }
  return NULL;
}

/* deleteSocket(slot): true if removed, false if the slot was already empty. */
napi_value steering_delete_socket(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  int64_t slot;
  struct steering *st = get_self(env, info, 1, argv, false);
  if (st == NULL) return NULL;
  if (!sy_get_int(env, argv[0], "slot", 0, STEER_SOCKETS_MAX - 1, &slot)) return NULL;
  __u32 key = (__u32)slot;
  int rc = bpf_map_delete_elem(st->sockets_fd, &key);
  /*
   * An empty sockmap slot answers EINVAL, not ENOENT (__sock_map_delete);
   * the slot is in range (checked above), so EINVAL means "already empty".
   */
  if (rc == -EINVAL) rc = -ENOENT;
  if (rc < 0 && rc != -ENOENT) {
    char detail[32];
    snprintf(detail, sizeof detail, "sockets[%u]", key);
    return sy_throw_errno(env, -rc, "bpf_map_delete_elem", detail);
  }
  NAPI_CALL(env, napi_get_boolean(env, rc == 0, &out));
  return out;
}

/*
 * setPorts(entries: Buffer of struct steer_port_entry): validates every record,
 * then inserts them in order (BPF_ANY). Not atomic: on a kernel error the
 * records before `index` are in the map.
 */
napi_value steering_set_ports(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  const uint8_t *data;
  size_t len;
  struct steering *st = get_self(env, info, 1, argv, false);
  if (st == NULL) return NULL;
  if (!get_buffer(env, argv[0], "entries", sizeof(struct steer_port_entry), &data, &len)) return NULL;
  size_t count = len / sizeof(struct steer_port_entry);

  for (size_t i = 0; i < count; i++) {
    struct steer_port_entry e;
    memcpy(&e, data + i * sizeof e, sizeof e); /* Buffers need not be aligned */
    const char *why = check_key(&e.key);
    if (why == NULL && e.slot >= STEER_SOCKETS_MAX) why = "slot out of range";
    if (why != NULL) return throw_record(env, "ports", i, why);
  }
  for (size_t i = 0; i < count; i++) {
    struct steer_port_entry e;
    memcpy(&e, data + i * sizeof e, sizeof e);
    int rc = bpf_map_update_elem(st->ports_fd, &e.key, &e.slot, BPF_ANY);
    if (rc < 0) {
      char detail[64];
      snprintf(detail, sizeof detail, "ports record %zu (port %u)", i, e.key.port);
      return throw_bpf(env, -rc, "bpf_map_update_elem", detail, NULL, (long)i);
    }
  }
  return NULL;
}

/* deletePorts(keys: Buffer of struct steer_key): returns how many existed. */
napi_value steering_delete_ports(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  const uint8_t *data;
  size_t len;
  uint32_t deleted = 0;
  struct steering *st = get_self(env, info, 1, argv, false);
  if (st == NULL) return NULL;
  if (!get_buffer(env, argv[0], "keys", sizeof(struct steer_key), &data, &len)) return NULL;
  size_t count = len / sizeof(struct steer_key);

  for (size_t i = 0; i < count; i++) {
    struct steer_key k;
    memcpy(&k, data + i * sizeof k, sizeof k);
    const char *why = check_key(&k);
    if (why != NULL) return throw_record(env, "ports key", i, why);
  }
  for (size_t i = 0; i < count; i++) {
    struct steer_key k;
    memcpy(&k, data + i * sizeof k, sizeof k);
    int rc = bpf_map_delete_elem(st->ports_fd, &k);
    if (rc == 0) {
      deleted++;
    } else if (rc != -ENOENT) { /* already gone is what the caller wanted */
      char detail[64];
      snprintf(detail, sizeof detail, "ports key %zu (port %u)", i, k.port);
      return throw_bpf(env, -rc, "bpf_map_delete_elem", detail, NULL, (long)i);
    }
  }
  return make_uint(env, deleted);
}

/*
 * readCounters(slots = STEER_SOCKETS_MAX): BigUint64Array of slots * 3,
 * [steered, missing_socket, assign_failed] per slot, summed over CPUs.
 */
napi_value steering_read_counters(napi_env env, napi_callback_info info) {
  napi_value argv[1], buffer, out;
  int64_t slots = STEER_SOCKETS_MAX;
  bool undef;
  void *raw = NULL;
  struct steering *st = get_self(env, info, 1, argv, false);
  if (st == NULL) return NULL;
  if (!is_undefined(env, argv[0], &undef)) return NULL;
  if (!undef && !sy_get_int(env, argv[0], "slots", 0, STEER_SOCKETS_MAX, &slots)) return NULL;

  size_t total = (size_t)slots * STEER_COUNTER_FIELDS;
  NAPI_CALL(env, napi_create_arraybuffer(env, total * sizeof(__u64), &raw, &buffer));
  __u64 *sum = raw;
  memset(sum, 0, total * sizeof(__u64));

  __u32 *keys = malloc(COUNTER_CHUNK * sizeof(__u32));
  struct steer_counters *values = malloc((size_t)COUNTER_CHUNK * (size_t)st->ncpus * sizeof(struct steer_counters));
  if (keys == NULL || values == NULL) {
    free(keys);
    free(values);
    return sy_throw_errno(env, ENOMEM, "malloc", "counters");
  }
  __u32 in_key = 0, out_key = 0;
  bool first = true;
  size_t done = 0;
  while (done < (size_t)slots) {
    __u32 n = (__u32)((size_t)slots - done < COUNTER_CHUNK ? (size_t)slots - done : COUNTER_CHUNK);
    int rc = bpf_map_lookup_batch(st->counters_fd, first ? NULL : &in_key, &out_key, keys, values, &n, NULL);
    if (rc < 0 && rc != -ENOENT) { /* ENOENT: the end of the map */
      free(keys);
      free(values);
      return sy_throw_errno(env, -rc, "bpf_map_lookup_batch", "counters");
    }
    for (__u32 i = 0; i < n; i++) {
      if (keys[i] >= (__u32)slots) continue;
      __u64 *dst = sum + (size_t)keys[i] * STEER_COUNTER_FIELDS;
      for (int c = 0; c < st->ncpus; c++) {
        const struct steer_counters *v = &values[(size_t)i * (size_t)st->ncpus + (size_t)c];
        dst[0] += v->steered;
        dst[1] += v->missing_socket;
        dst[2] += v->assign_failed;
      }
    }
    done += n;
    if (rc == -ENOENT || n == 0) break;
    in_key = out_key;
    first = false;
  }
  free(keys);
  free(values);
  NAPI_CALL(env, napi_create_typedarray(env, napi_biguint64_array, total, buffer, 0, &out));
  return out;
}

/*
 * readPorts(): every entry of the ports trie as a Buffer of struct
 * steer_port_entry, in the trie's own order (for a process that took the maps
 * over and needs to know what they hold).
 *
 * BPF_MAP_GET_NEXT_KEY, then a lookup of each key: a lookup with a stored
 * key's own prefixlen finds that entry, not a longer one (the trie compares
 * at most the key's prefixlen bits). Not a snapshot: an entry deleted between
 * the two calls is skipped. If the key a step starts from was deleted
 * meanwhile, the trie starts over from its first key, so a walk racing
 * another writer could repeat entries or never end: it stops with EAGAIN
 * after STEER_PORTS_MAX entries, more than the trie can hold.
 */
napi_value steering_read_ports(napi_env env, napi_callback_info info) {
  napi_value out;
  size_t count = 0, cap = 0;
  struct steer_port_entry *entries = NULL;
  struct steer_key key, next;
  bool first = true;
  struct steering *st = get_self(env, info, 0, NULL, false);
  if (st == NULL) return NULL;

  for (;;) {
    int rc = bpf_map_get_next_key(st->ports_fd, first ? NULL : &key, &next);
    if (rc == -ENOENT) break; /* past the last key */
    if (rc < 0) {
      free(entries);
      return sy_throw_errno(env, -rc, "bpf_map_get_next_key", "ports");
    }
    first = false;
    key = next;
    __u32 slot;
    rc = bpf_map_lookup_elem(st->ports_fd, &key, &slot);
    if (rc == -ENOENT) continue;
    if (rc < 0) {
      free(entries);
      return sy_throw_errno(env, -rc, "bpf_map_lookup_elem", "ports");
    }
    if (count == STEER_PORTS_MAX) {
      free(entries);
      return sy_throw_errno(env, EAGAIN, "bpf_map_get_next_key", "ports (changed during the walk)");
    }
    if (count == cap) {
      size_t grown = cap == 0 ? PORTS_CHUNK : cap * 2;
      struct steer_port_entry *p = realloc(entries, grown * sizeof *entries);
      if (p == NULL) {
        free(entries);
        return sy_throw_errno(env, ENOMEM, "realloc", "ports");
      }
      entries = p;
      cap = grown;
    }
    entries[count].key = key;
    entries[count].slot = slot;
    count++;
  }

  napi_status status = count > 0 ? napi_create_buffer_copy(env, count * sizeof *entries, entries, NULL, &out)
                                 : napi_create_buffer(env, 0, NULL, &out);
  free(entries);
  NAPI_CALL(env, status);
  return out;
}
