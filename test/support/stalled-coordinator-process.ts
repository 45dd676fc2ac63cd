/**
 * Child process: a coordinator caught in the middle of a connection, for the kill-point tests. It listens on the
 * port it is given (the real coordinator's, between two incarnations), lets sites open their websocket (engine.io's
 * handshake) and never answers socket.io's namespace handshake, so every site that connects stays in the window
 * between the two, where a coordinator killed at random moments (`kill -9` by a supervisor) also leaves it. Prints
 * `listening PORT` once bound and `pending N` each time a site's attempt reaches the window. Loopback only.
 * Usage: stalled-coordinator-process.ts PORT
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2]);
const http = createServer((_req, res) => res.writeHead(404).end());
const io = new Server(http, { transports: ['websocket'] });
let pending = 0;
io.use((_socket, _next) => {
  // Never call next(): the site's socket.io handshake stays unanswered until this process is killed.
  pending++;
  process.stdout.write(`pending ${pending}\n`);
});
http.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
