/*
 * The BPF steering contract: map layouts shared by the sk_lookup program
 * (steering.bpf.c), the addon (bpf.c) and, mirrored byte for byte with a size
 * check, the TypeScript facade (steering.ts).
 *
 * Maps (none pinned: they live as long as the supervisor's bpf_object):
 *   ports    LPM_TRIE   struct steer_key      -> __u32 slot           (STEER_PORTS_MAX)
 *   sockets  SOCKMAP    __u32 slot            -> __u64 socket         (STEER_SOCKETS_MAX)
 *   counters PERCPU_ARRAY __u32 slot          -> struct steer_counters (STEER_SOCKETS_MAX)
 *
 * A slot is an app: the supervisor puts that app's one listening socket in
 * sockets[slot] and maps each (port, address prefix) of the app to the slot.
 */
#ifndef SWITCHYARD_STEERING_H
#define SWITCHYARD_STEERING_H

#include <linux/types.h>

/* Apps (sockmap slots). Slots are 0 .. STEER_SOCKETS_MAX-1. */
#define STEER_SOCKETS_MAX 4096
/* (port, prefix) entries in the ports trie. */
#define STEER_PORTS_MAX 262144

/* steer_key.family: not AF_* so the key does not depend on libc headers. */
#define STEER_FAMILY_V4 4
#define STEER_FAMILY_V6 6

/* Bits of steer_key before addr that are always part of the prefix. */
#define STEER_KEY_FIXED_BITS 32
#define STEER_KEY_MAX_PREFIXLEN (STEER_KEY_FIXED_BITS + 128)

/*
 * Key of the ports LPM trie, 24 bytes:
 *
 *   offset size field
 *        0    4 prefixlen  bits that must match, counted from `port`:
 *                          32 (port, family, pad) + address prefix length
 *                          (0-32 for family 4, 0-128 for family 6)
 *        4    2 port       destination port, HOST byte order (as ctx->local_port)
 *        6    1 family     STEER_FAMILY_V4 or STEER_FAMILY_V6
 *        7    1 pad        always 0 (it is inside every prefix)
 *        8   16 addr       destination address, network byte order;
 *                          family 4: the IPv4 address in addr[0..3], addr[4..15] = 0
 *                          family 6: the IPv6 address in addr[0..15]
 *
 * The trie compares prefixlen bits from `port` on, so port and family always
 * match exactly and the address by its longest prefix: "127.0.0.1/32" beats
 * "0.0.0.0/0" for the same port. Bits beyond the prefix must be zero in
 * stored keys (the facade masks them).
 */
struct steer_key {
	__u32 prefixlen;
	__u16 port;
	__u8 family;
	__u8 pad;
	__u8 addr[16];
};

/* One record of the batch that setPorts() takes: key then slot, 28 bytes, no padding. */
struct steer_port_entry {
	struct steer_key key;
	__u32 slot;
};

/*
 * Per-slot counters, per CPU in the map, summed over CPUs when read.
 * The field order is the order readCounters() returns them in.
 */
struct steer_counters {
	__u64 steered;        /* connections assigned to the slot's socket */
	__u64 missing_socket; /* port configured, but sockets[slot] empty: dropped */
	__u64 assign_failed;  /* bpf_sk_assign refused the socket: dropped */
};
#define STEER_COUNTER_FIELDS 3

_Static_assert(sizeof(struct steer_key) == 24, "steer_key must be 24 bytes");
_Static_assert(sizeof(struct steer_port_entry) == 28, "steer_port_entry must be 28 bytes");
_Static_assert(sizeof(struct steer_counters) == STEER_COUNTER_FIELDS * 8, "steer_counters must be 3 x u64");
_Static_assert(__builtin_offsetof(struct steer_key, port) == 4, "steer_key.port at 4");
_Static_assert(__builtin_offsetof(struct steer_key, family) == 6, "steer_key.family at 6");
_Static_assert(__builtin_offsetof(struct steer_key, addr) == 8, "steer_key.addr at 8");
_Static_assert(__builtin_offsetof(struct steer_port_entry, slot) == 24, "steer_port_entry.slot at 24");
_Static_assert((sizeof(struct steer_key) - 4) * 8 == STEER_KEY_MAX_PREFIXLEN, "prefix covers the whole key");

#endif
