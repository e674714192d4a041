import net from "node:net";
import { parseArgs } from "node:util";
import { parseHostPort } from "../supervisor/args.js";

/**
 * `switchyard echo --listen HOST:PORT [--listen ...]`: a TCP echo server for
 * `make run` and tests. It passes a half-close on, like the proxy.
 */
export async function echo(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { listen: { type: "string", multiple: true } }, strict: true });
  const addrs = (values.listen ?? []).map((a) => parseHostPort(a, "--listen"));
  if (addrs.length === 0) {
    process.stderr.write("echo: --listen HOST:PORT is required\n");
    return 2;
  }
  const servers = await Promise.all(
    addrs.map(
      ({ host, port }) =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer({ allowHalfOpen: true }, (s) => {
            s.on("error", () => s.destroy());
            s.pipe(s);
          });
          server.once("error", reject);
          server.listen(port, host, () => resolve(server));
        }),
    ),
  );
  for (const s of servers) {
    const a = s.address() as net.AddressInfo;
    process.stdout.write(JSON.stringify({ event: "echo_listening", address: a.address, port: a.port }) + "\n");
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      for (const s of servers) s.close();
      resolve();
    };
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  return 0;
}
