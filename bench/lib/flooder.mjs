// A hostile client for the flood benchmark, run as its own process:
//   node bench/lib/flooder.mjs PORT CONNECTIONS SECONDS [--no-read]
// Each connection pipelines NOOP x 2000 per write, as fast as the socket accepts
// them, without waiting for replies; replies are read and thrown away (or, with
// --no-read, never read: the server must then stop reading too). Stops by itself
// after SECONDS and prints one JSON line: commands sent, reply bytes received.
// Must not know: what the server is or what is being measured.
import { connect } from 'node:net';

const [port, connections, seconds] = process.argv.slice(2, 5).map(Number);
const read = !process.argv.includes('--no-read');
const batch = Buffer.from('NOOP\r\n'.repeat(2000));
const until = Date.now() + seconds * 1000;
let sent = 0;
let received = 0;
let closedEarly = 0;

function flood() {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      socket.destroy();
      resolve();
    };
    const pump = () => {
      while (Date.now() < until) {
        sent += 2000;
        if (!socket.write(batch)) return; // wait for 'drain'
      }
      stop();
    };
    socket.on('connect', pump);
    socket.on('drain', pump);
    if (read) socket.on('data', (chunk) => (received += chunk.length));
    else socket.pause();
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (Date.now() < until) closedEarly++;
      stop();
    });
    // A socket that never drains (--no-read) still stops on time.
    setTimeout(stop, seconds * 1000 + 100).unref();
  });
}

await Promise.all(Array.from({ length: connections }, flood));
process.stdout.write(JSON.stringify({ connections, read, sent, received, closedEarly }) + '\n');
