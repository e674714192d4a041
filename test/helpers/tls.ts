// TLS peers for the server-name routing tests: a self-signed certificate made
// with openssl, TLS servers that answer with their own name, and a way to
// capture the exact bytes of a real ClientHello.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import tls from "node:tls";
import { once } from "node:events";
import { tempDir } from "./supervisor.js";

let cached: { key: string; cert: string } | undefined;

/** A throwaway key and certificate (the clients in these tests do not verify it). */
export function selfSigned(): { key: string; cert: string } {
  if (cached) return cached;
  const dir = tempDir("switchyard-tls-");
  const [key, cert] = [path.join(dir, "key.pem"), path.join(dir, "cert.pem")];
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=switchyard-test"], { stdio: "ignore" });
  cached = { key: fs.readFileSync(key, "utf8"), cert: fs.readFileSync(cert, "utf8") };
  fs.rmSync(dir, { recursive: true, force: true });
  return cached;
}

export interface TlsTarget {
  port: number;
  close(): Promise<void>;
}

/** A TLS server that writes "<name>\n" to each client once the handshake is done, then closes. */
export async function tlsTarget(name: string): Promise<TlsTarget> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(selfSigned(), (s) => {
    s.on("error", () => undefined);
    s.end(`${name}\n`);
  });
  server.on("connection", (s: net.Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("tlsClientError", () => undefined);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Which target answers a TLS client asking for `servername` ("" : no SNI) through `port`; "" when closed without an answer. */
export function tlsWhoServes(port: number, servername: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false });
    let text = "";
    s.setEncoding("utf8").on("data", (d: string) => (text += d));
    s.on("error", () => resolve(text.trim()));
    s.on("close", () => resolve(text.trim()));
  });
}

/** The bytes a real TLS client sends first (its ClientHello) when asking for `servername`. */
export async function captureClientHello(servername: string): Promise<Buffer> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as net.AddressInfo).port;
  const got = new Promise<Buffer>((resolve) =>
    server.once("connection", (s: net.Socket) => {
      s.once("data", (d: Buffer) => {
        resolve(d);
        s.destroy();
      });
    }),
  );
  const client = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false });
  client.on("error", () => undefined);
  const hello = await got;
  client.destroy();
  server.close();
  return hello;
}
