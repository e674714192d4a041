// SPDX-License-Identifier: GPL-2.0
/*
 * switchyard steering: an sk_lookup program that gives every new TCP
 * connection to a configured (destination address, port) to the one
 * listening socket of the app that owns it.
 *
 * The kernel runs it when it looks for a listening socket for an incoming
 * SYN, before its own listener lookup. The maps and their layout are in
 * steering.h; bpf.c loads this object, fills the maps and attaches the
 * program to one network namespace with a BPF link.
 *
 * Build: clang -O2 -g -target bpf -D__TARGET_ARCH_x86 \
 *          -I/usr/include/$(gcc -print-multiarch) \
 *          -c native/steering.bpf.c -o native/build/steering.bpf.o
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/types.h>

#include <bpf/bpf_helpers.h>

#include "steering.h"

/* Values of ctx->family; the libc headers are not usable for target bpf. */
#define AF_INET 2
#define AF_INET6 10

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__uint(max_entries, STEER_PORTS_MAX);
	__type(key, struct steer_key);
	__type(value, __u32);
} ports SEC(".maps");

/*
 * key_size/value_size rather than __type(): sockmaps take no BTF, and libbpf
 * would otherwise log a failed map creation and retry without it. The value
 * is 8 bytes so that a lookup from user space returns the socket cookie.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, STEER_SOCKETS_MAX);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u64));
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STEER_SOCKETS_MAX);
	__type(key, __u32);
	__type(value, struct steer_counters);
} counters SEC(".maps");

SEC("sk_lookup")
int steer(struct bpf_sk_lookup *ctx)
{
	struct steer_key key = {};
	struct steer_counters *count;
	struct bpf_sock *sk;
	__u32 *slot;
	__u32 s;
	long err;

	/* UDP (or anything else): not ours, the kernel's own lookup decides. */
	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;

	/*
	 * Read every ctx field up front, whatever the family: clang would
	 * otherwise merge the per-family loads into one load through a
	 * computed ctx pointer, which the verifier rejects.
	 */
	__u32 family = ctx->family;
	__u32 ip4 = ctx->local_ip4;
	__u32 ip6_0 = ctx->local_ip6[0];
	__u32 ip6_1 = ctx->local_ip6[1];
	__u32 ip6_2 = ctx->local_ip6[2];
	__u32 ip6_3 = ctx->local_ip6[3];

	key.port = (__u16)ctx->local_port; /* host byte order, as in the trie */
	if (family == AF_INET) {
		key.prefixlen = STEER_KEY_FIXED_BITS + 32;
		key.family = STEER_FAMILY_V4;
		__builtin_memcpy(&key.addr[0], &ip4, 4);
	} else if (family == AF_INET6) {
		key.prefixlen = STEER_KEY_FIXED_BITS + 128;
		key.family = STEER_FAMILY_V6;
		__builtin_memcpy(&key.addr[0], &ip6_0, 4);
		__builtin_memcpy(&key.addr[4], &ip6_1, 4);
		__builtin_memcpy(&key.addr[8], &ip6_2, 4);
		__builtin_memcpy(&key.addr[12], &ip6_3, 4);
	} else {
		/* No other family reaches sk_lookup today; leave it to the kernel. */
		return SK_PASS;
	}

	slot = bpf_map_lookup_elem(&ports, &key);
	if (!slot)
		/*
		 * Not a configured (address, port): the kernel's normal listener
		 * lookup runs as if this program did not exist, so everything
		 * else on the host (sshd, the admin port, ports mode) still works.
		 */
		return SK_PASS;

	s = *slot;
	count = bpf_map_lookup_elem(&counters, &s);

	sk = bpf_map_lookup_elem(&sockets, &s);
	if (!sk) {
		if (count)
			count->missing_socket++;
		/*
		 * The port belongs to an app but its socket is gone (supervisor
		 * stopping, or a slot out of range). Fail closed: SK_DROP ends
		 * the lookup with no socket, so the client gets a RST rather
		 * than reaching some other socket that happens to be bound to
		 * this address and port.
		 */
		return SK_DROP;
	}

	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		if (count)
			count->assign_failed++;
		/*
		 * The socket cannot take this connection: -EAFNOSUPPORT for an
		 * IPv4 connection and an IPv6-only socket (an AF_INET6 socket
		 * bound to a specific IPv6 address is IPv6-only, whatever
		 * IPV6_V6ONLY says), -EPROTOTYPE, -ESOCKTNOSUPPORT for a socket
		 * not listening. The app is misconfigured; drop for the same
		 * reason as above rather than fall through to another socket.
		 */
		return SK_DROP;
	}

	if (count)
		count->steered++;
	/* Assigned: the connection goes to the app's socket, the port intact. */
	return SK_PASS;
}
