#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fd_util.h"

void sy_close_fds(const int *fds, size_t n) {
  for (size_t i = 0; i < n; i++) close(fds[i]);
}

size_t sy_collect_fds(struct msghdr *msg, int *out, size_t cap) {
  size_t n = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL; c = CMSG_NXTHDR(msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char *p = CMSG_DATA(c);
    for (size_t i = 0; i < count && n < cap; i++) memcpy(&out[n++], p + i * sizeof(int), sizeof(int));
  }
  return n;
}

int sy_set_nonblock(int fd, bool on) {
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return -1;
  int want = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
  return want == flags ? 0 : fcntl(fd, F_SETFL, want);
}
