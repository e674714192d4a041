// A process whose only handle is a native relay carrying one connection
// (native-relay.test.ts): connects to the two ports in argv, hands both
// sockets to the relay, says "ready", and prints the RelayEnd as JSON when
// done() runs. Nothing else keeps it alive: an unref'd timer says "alive" only
// if something (the relay) kept the process running past it.
import net from "node:net";
import { once } from "node:events";

import { Relay } from "../../native/relay.js";
import { takeFd } from "./relay-pairs.js";

const ALIVE_AFTER_MS = 300;

const [portA, portB] = process.argv.slice(2).map(Number);
const a = net.connect({ host: "127.0.0.1", port: portA! });
const b = net.connect({ host: "127.0.0.1", port: portB! });
a.pause();
b.pause();
await Promise.all([once(a, "connect"), once(b, "connect")]);
const relay = new Relay();
relay.add(takeFd(a), takeFd(b), { idleTimeoutMs: null }, (end) => process.stdout.write(`${JSON.stringify(end)}\n`));
process.stdout.write("ready\n");
setTimeout(() => process.stdout.write("alive\n"), ALIVE_AFTER_MS).unref();
