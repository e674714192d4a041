import type { ListenOptions } from "../../native/index.js";
import { KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_PROBES } from "../../common/tcp-keepalive.js";

/**
 * Socket options of every listening socket that carries traffic. Linux copies
 * them into each accepted connection, so the client leg of every proxied
 * connection has them without a setsockopt per connection in the workers.
 */
export const PROXY_LISTEN_OPTIONS: ListenOptions = {
  noDelay: true,
  keepAliveIdleS: KEEPALIVE_IDLE_S,
  keepAliveIntervalS: KEEPALIVE_INTERVAL_S,
  keepAliveProbes: KEEPALIVE_PROBES,
};
