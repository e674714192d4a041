/*
 * lockExclusive(fd): a non-blocking flock(LOCK_EX) on an open file. The lock
 * belongs to the open file description, so it lasts until the process exits
 * (or crashes): nothing stale is ever left to clean up.
 */
#include <sys/file.h>

#include "napi_util.h"

static napi_value lock_exclusive(napi_env env, napi_callback_info info) {
  SY_ARGS(env, info, 1, argv);
  int fd;
  if (!sy_get_fd(env, argv[0], "fd", &fd)) return NULL;
  int rc;
  do rc = flock(fd, LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  /* EWOULDBLOCK: another process holds it; the caller names that process. */
  if (rc != 0) return sy_throw_errno(env, errno, "flock", NULL);
  return NULL;
}

napi_status switchyard_init_lock(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {SY_FN("lockExclusive", lock_exclusive)};
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
