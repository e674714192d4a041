/**
 * TCP keepalive on both legs of every proxied connection: a peer that vanished
 * without a FIN or RST (a host powered off, a NAT entry dropped) is detected
 * after about KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S × KEEPALIVE_PROBES = 2 min
 * of silence, and the connection's other leg closed, instead of holding both
 * fds and the target's resources forever. Idle but live connections are untouched.
 */
export const KEEPALIVE_IDLE_S = 60;
export const KEEPALIVE_INTERVAL_S = 10;
export const KEEPALIVE_PROBES = 6;
