// Both data paths (--data-path native, the addon's splice relay; js, Node
// streams) carry the same bytes the same way: a half-close passed on with the
// reply after it, a PROXY header and what follows it in order, exact byte
// counts in the access log; an unknown data path is refused by name.
import test from "ava";
import crypto from "node:crypto";
import net from "node:net";
import { once } from "node:events";
import { runCli, startSupervisor, tempDir } from "./helpers/supervisor.js";
import { freePorts } from "./helpers/net.js";

/** A target that answers each connection with `reply` once the client has finished sending, and keeps what it got. */
async function replyAfterEnd(reply: Buffer): Promise<{ port: number; received: Buffer[]; close(): Promise<void> }> {
  const received: Buffer[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer) => chunks.push(c));
    s.on("error", () => s.destroy());
    s.on("end", () => {
      received.push(Buffer.concat(chunks));
      s.end(reply);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as net.AddressInfo).port, received, close: () => new Promise((r) => server.close(() => r())) };
}

/** Sends `request`, half-closes, and reads until the proxy closes. */
async function halfCloseExchange(port: number, request: Buffer): Promise<Buffer> {
  const s = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on("data", (c: Buffer) => chunks.push(c));
  await once(s, "connect");
  s.end(request);
  await once(s, "close");
  return Buffer.concat(chunks);
}

for (const dataPath of ["native", "js"] as const) {
  test(`--data-path ${dataPath}: a half-close reaches the target and its 3 MB reply after it, a PROXY header first, exact bytes in the access log`, async (t) => {
    const reply = crypto.randomBytes(3 << 20);
    const request = crypto.randomBytes(200_000);
    const target = await replyAfterEnd(reply);
    const [plain, withHeader] = (await freePorts(2)) as [number, number];
    const sup = await startSupervisor({
      config: {
        Apps: [
          { Name: "plain", Ports: [plain], Targets: [`127.0.0.1:${target.port}`] },
          { Name: "proxied", Ports: [withHeader], Targets: [`127.0.0.1:${target.port}`], ProxyProtocol: "v1" },
        ],
      },
      workers: 1,
      args: ["--data-path", dataPath],
    });
    t.teardown(async () => {
      await sup.stop();
      await target.close();
    });
    const started = await sup.waitFor((l) => l.event === "worker_started", 10_000);
    t.is(started.data_path, dataPath);

    const got = await halfCloseExchange(plain, request);
    t.true(got.equals(reply), `reply: ${got.length} bytes, expected ${reply.length}`);
    t.true(target.received[0]!.equals(request), "the target got the request whole before the FIN");
    const line = await sup.waitFor((l) => l.app === "plain" && "end" in l, 5000);
    t.is(line.end, "closed");
    t.is(line.bytes_in, request.length);
    t.is(line.bytes_out, reply.length);

    const got2 = await halfCloseExchange(withHeader, request);
    t.true(got2.equals(reply));
    const seen = target.received[1]!;
    const headerEnd = seen.indexOf("\r\n") + 2;
    t.regex(seen.subarray(0, headerEnd).toString("latin1"), new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 \\d+ ${withHeader}\\r\\n$`));
    t.true(seen.subarray(headerEnd).equals(request), "the client's bytes follow the header, in order");
    const line2 = await sup.waitFor((l) => l.app === "proxied" && "end" in l, 5000);
    t.is(line2.bytes_in, request.length + headerEnd, "bytes_in counts the header written to the target");
    t.is(line2.bytes_out, reply.length);
  });
}

test("--data-path other than native or js: run exits 1 naming the option and the value", async (t) => {
  const dir = tempDir("data-path");
  const r = await runCli(["run", "--config", "/nonexistent.json", "--data-path", "splice", "--runtime-dir", dir, "--admin", "127.0.0.1:0"]);
  t.not(r.code, 0);
  t.regex(r.stderr, /--data-path: expected native or js, got "splice"/);
});
