// Fixed ports: the benchmark runs in a network namespace of its own, so nothing
// else can hold them. Proxy ports and scale ports sit below the ephemeral range,
// which netns.ts moves to 30000-65535.

/** Backends. nginx answers on four ports: config A uses the first two, B the last two. */
export const NGINX_PORTS = [8081, 8082, 8083, 8084] as const;
export const IPERF_PORT = 5201;
export const TAG_PORTS = { A: 7001, B: 7002 } as const;
export const HOLD_PORT = 7100;

/** What a proxy listens on, one app each. */
export const PROXY_PORTS = { web: 4080, bulk: 4201, tag: 4700, hold: 4100 } as const;
export type Service = keyof typeof PROXY_PORTS;

/** The direct party dials the backends themselves. */
export const DIRECT_PORTS: Record<Service, number> = { web: NGINX_PORTS[0], bulk: IPERF_PORT, tag: TAG_PORTS.A, hold: HOLD_PORT };

export const ADMIN_PORT = 9901;
/** The scale test's ports start here (10,000 … 29,999 for 20,000 ports). */
export const SCALE_FIRST_PORT = 10_000;
export const EPHEMERAL_RANGE = [30_000, 65_535] as const;

export type Variant = 0 | 1;

/** Targets of each app under config variant A (0) or B (1). */
export function targets(variant: Variant): Record<Service, string[]> {
  const web = variant === 0 ? [NGINX_PORTS[0], NGINX_PORTS[1]] : [NGINX_PORTS[2], NGINX_PORTS[3]];
  return {
    web: web.map((p) => `127.0.0.1:${p}`),
    bulk: [`127.0.0.1:${IPERF_PORT}`],
    tag: [`127.0.0.1:${variant === 0 ? TAG_PORTS.A : TAG_PORTS.B}`],
    hold: [`127.0.0.1:${HOLD_PORT}`],
  };
}

/** The tag each variant's tag (and scale) app answers with. */
export const TAG_NAMES = ["A", "B"] as const;

/** The optional "scale" app: `count` ports from SCALE_FIRST_PORT, to the tag backend of the variant. */
export interface ScaleApp {
  first: number;
  last: number;
  target: string;
}

export function scaleApp(count: number, variant: Variant): ScaleApp | undefined {
  if (count <= 0) return undefined;
  return { first: SCALE_FIRST_PORT, last: SCALE_FIRST_PORT + count - 1, target: `127.0.0.1:${variant === 0 ? TAG_PORTS.A : TAG_PORTS.B}` };
}
