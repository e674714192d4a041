#ifndef SWITCHYARD_TCP_H
#define SWITCHYARD_TCP_H

/* The kernel's limits for TCP_KEEPIDLE / TCP_KEEPINTVL and TCP_KEEPCNT. */
#define SY_KEEPALIVE_TIME_MAX 32767
#define SY_KEEPALIVE_PROBES_MAX 127

/* SO_KEEPALIVE with its three timings; on failure, *failed names the option and errno is set. */
int sy_set_keepalive(int fd, int idle_s, int interval_s, int probes, const char **failed);

/*
 * Bytes written to a TCP socket that its peer has not acknowledged (SIOCOUTQ),
 * 0 once the connection is closed (a reset leaves a stale count); -1 with errno
 * set and the failing call named.
 */
int sy_tcp_outq(int fd, const char **syscall, const char **detail);

#endif
