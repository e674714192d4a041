// A tiny backend, run as its own process so its sockets count against its own
// RLIMIT_NOFILE:
//   tag NAME PORT   writes "NAME\n" and closes: shows which config a connection followed
//   hold PORT       writes "+" and keeps the connection: idle connections for the memory test
import net from "node:net";

const [mode, ...rest] = process.argv.slice(2);
const port = Number(mode === "tag" ? rest[1] : rest[0]);
const name = rest[0] ?? "";

const server = net.createServer((socket) => {
  socket.on("error", () => undefined);
  if (mode === "tag") socket.end(`${name}\n`);
  else socket.write("+");
});
server.listen({ host: "127.0.0.1", port, backlog: 4096 }, () => console.log(JSON.stringify({ listening: port })));
process.on("SIGTERM", () => process.exit(0));
