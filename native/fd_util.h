/*
 * Fds received with SCM_RIGHTS (fdpass.c, notify.c): collected from a
 * message's control data, and closed when the message is refused. And
 * O_NONBLOCK, set or cleared.
 */
#ifndef SWITCHYARD_FD_UTIL_H
#define SWITCHYARD_FD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

void sy_close_fds(const int *fds, size_t n);

/*
 * Collects every SCM_RIGHTS fd from all of msg's cmsgs, at most `cap`; returns
 * how many. cmsg_len says how many fds the kernel actually installed, also
 * when the control buffer was truncated.
 */
size_t sy_collect_fds(struct msghdr *msg, int *out, size_t cap);

/* O_NONBLOCK on (or off) for the open file `fd` names (shared by its dups, in every process); 0 or -1 with errno. */
int sy_set_nonblock(int fd, bool on);

#endif
