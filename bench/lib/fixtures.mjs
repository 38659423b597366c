// What both servers under test share: a temp directory, a throwaway certificate,
// N users with one password, the scripts the workloads send, free loopback ports.
// Must not know: how either server is configured.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function makeWorkDir() {
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-bench-'));
  // Dovecot's unprivileged processes (and the mail uid) must traverse it.
  chmodSync(dir, 0o755);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function makeCert(dir) {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/** Users bench0000..benchNNNN with one password, hashed the Courier/Dovecot {SHA256} way (base64 digest). */
export function makeUsers(count, password = 'bench-password') {
  const hash = '{SHA256}' + createHash('sha256').update(password, 'utf8').digest('base64');
  const users = [];
  for (let i = 0; i < count; i++) users.push(`bench${String(i).padStart(4, '0')}`);
  return { users, password, hash };
}

/**
 * `script` (from makeScript) with its closing comment line ending in `n`: the same
 * size, another text. tsieved keeps its verdicts on scripts it has seen, and a
 * client checks new text, so a validation workload sends a new variant each time.
 */
export function scriptVariant(script, n) {
  const text = Buffer.from(script);
  Buffer.from(`${n}`).copy(text, text.length - 1 - `${n}`.length);
  return text;
}

/** A script of about `bytes` bytes using only `fileinto`, which both servers accept. */
export function makeScript(bytes) {
  const head = 'require ["fileinto"];\n';
  const parts = [head];
  let size = head.length;
  for (let i = 0; size < bytes - 200; i++) {
    const rule = `if header :contains "subject" "topic ${i}" { fileinto "folder${i % 97}"; stop; }\n`;
    parts.push(rule);
    size += rule.length;
  }
  const body = parts.join('');
  return Buffer.from(body + '#'.repeat(Math.max(0, bytes - body.length - 1)) + '\n');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}
