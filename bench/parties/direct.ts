// No proxy: clients dial the backends. The upper limit on this machine.
import { DIRECT_PORTS, type Service } from "../layout.js";
import type { Party } from "./party.js";

export class Direct implements Party {
  readonly name = "direct";
  readonly proxied = false;
  readonly spawnedAt = 0;
  port(service: Service): number {
    return DIRECT_PORTS[service];
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  pids(): number[] {
    return [];
  }
}
