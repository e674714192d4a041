#ifndef SWITCHYARD_TCP_H
#define SWITCHYARD_TCP_H

/* The kernel's limits for TCP_KEEPIDLE / TCP_KEEPINTVL and TCP_KEEPCNT. */
#define SY_KEEPALIVE_TIME_MAX 32767
#define SY_KEEPALIVE_PROBES_MAX 127

/* SO_KEEPALIVE with its three timings; on failure, *failed names the option and errno is set. */
int sy_set_keepalive(int fd, int idle_s, int interval_s, int probes, const char **failed);

#endif
