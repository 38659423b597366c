// Starts the built tsieved (`node dist/tsieved.cjs serve --config FILE`) on a loopback
// port with a temp userdb and storage, for the benchmark; stops it after.
// Must not know: the workloads.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitForPort } from './wait.mjs';

// onLogLine (optional) sees every line the server logs; pauseLog()/resumeLog() stop and
// restart reading its stderr (a log consumer that stalls, as a slow journald can).
// pam (optional): { service, homes } logs the users (Unix accounts with homes below
// `homes`) in through that PAM service, each session with its own file broker
// (isolation = "process"), instead of the temp userdb.
// workers (optional, default 1): [server] workers, the number of server processes.
export async function startTsieved({ root, dir, port, cert, users, onLogLine, pam, workers = 1 }) {
  const base = join(dir, 'tsieved');
  const homes = pam?.homes ?? join(base, 'home');
  mkdirSync(base, { recursive: true });
  if (!pam) {
    mkdirSync(homes, { recursive: true });
    const uid = process.getuid();
    const gid = process.getgid();
    const userdb = users.users
      .map((u) => `${u}\tuid=${uid}|gid=${gid}|home=${join(homes, u)}|systempw=${users.hash}`)
      .join('\n');
    writeFileSync(join(base, 'userdb'), userdb + '\n', { mode: 0o600 });
    for (const u of users.users) mkdirSync(join(homes, u), { recursive: true });
  }
  const auth = pam
    ? `backend = "pam"\npam_service = "${pam.service}"`
    : `backend = "userdb"\nuserdb = "${join(base, 'userdb')}"`;
  const configFile = join(base, 'tsieved.toml');
  writeFileSync(
    configFile,
    `
[server]
listen = ["127.0.0.1:${port}"]
max_connections = 20000
max_connections_per_ip = 20000
max_bad_commands = 100
workers = ${workers}

[tls]
cert_file = "${cert.cert}"
key_file = "${cert.key}"

[auth]
${auth}

[storage]
scripts_dir = "{home}/sieve"
filter_path = "{home}/.forward"
roots = ["${homes}"]
isolation = "${pam ? 'process' : 'none'}"

[sieve]
capabilities = ["fileinto", "envelope", "copy", "subaddress", "encoded-character", "comparator-i;ascii-numeric", "vacation"]

[log]
level = "info"
`,
  );
  const child = spawn(process.execPath, [join(root, 'dist/tsieved.cjs'), 'serve', '--config', configFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let tail = '';
  let partial = '';
  child.stderr.on('data', (d) => {
    tail = (tail + d.toString()).slice(-4000);
    if (!onLogLine) return;
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop();
    for (const line of lines) onLogLine(line);
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await Promise.race([
    waitForPort(port),
    exited.then((code) => {
      throw new Error(`tsieved exited (${code}) before listening:\n${tail}`);
    }),
  ]);
  return {
    name: 'tsieved',
    pid: child.pid,
    port,
    version: workers === 1 ? 'tsieved' : `tsieved, ${workers} workers`,
    isAlive: () => child.exitCode === null && child.signalCode === null,
    pauseLog: () => child.stderr.pause(),
    resumeLog: () => child.stderr.resume(),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}
