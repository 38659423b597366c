/**
 * Test helpers for auth/sasl: password hashes made by the real tools (committed, see
 * madeBy), capture of log lines, and a SCRAM client written from RFC 5802
 * (independent of src/sasl/scram.ts).
 */
import { execFileSync } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { PASSWORD_HASHES } from '../fixtures/password-hashes.js';
import { tool } from '../helpers/tools.js';

const hashKey = (command: readonly string[], input: string): string => JSON.stringify([...command, input]);
const committed = new Map(PASSWORD_HASHES.map((h) => [hashKey(h.command, h.input), h.output]));

/**
 * What a hashing program (openssl passwd, mkpasswd, userdbpw, doveadm pw) printed,
 * trimmed, for these arguments and standard input: read from
 * test/fixtures/password-hashes.ts, where each entry was made once by the real
 * program and shows the command. So these tests need none of the programs. With
 * TSIEVED_RECORD_HASHES=FILE every request and its output is appended to FILE, and
 * one with no committed output runs the real program (test/fixtures/
 * record-password-hashes.mjs rewrites the fixture from FILE).
 */
export function madeBy(cmd: string, args: readonly string[], input = ''): string {
  const key = hashKey([cmd, ...args], input);
  const record = process.env['TSIEVED_RECORD_HASHES'];
  if (record) {
    const output =
      committed.get(key) ??
      execFileSync(tool(cmd), args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] }).trim();
    appendFileSync(record, JSON.stringify({ command: [cmd, ...args], input, output }) + '\n');
    return output;
  }
  const output = committed.get(key);
  if (output === undefined) {
    throw new Error(
      `no committed output of ${key} in test/fixtures/password-hashes.ts: run node test/fixtures/record-password-hashes.mjs`,
    );
  }
  return output;
}

export const PASSWORDS = {
  ascii: 'correct-horse-7',
  nonAscii: 'Tr0ub4dor&3 ü€',
  long: 'x'.repeat(60) + 'ünïcødé-päss-phrase-é€',
};

export interface Captured {
  readonly log: Logger;
  readonly lines: () => { level: number; msg: string; [k: string]: unknown }[];
  readonly text: () => string;
}

export function captureLogger(): Captured {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const log = pino({ level: 'debug' }, stream);
  const lines = (): { level: number; msg: string }[] =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { level: number; msg: string });
  return { log, lines, text: () => chunks.join('') };
}

/** A SCRAM client per RFC 5802 section 3, for driving the server in tests. */
export function scramClient(hash: 'sha1' | 'sha256', user: string, password: string, clientNonce: string, gs2 = 'n,,') {
  const bare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${clientNonce}`;
  return {
    first: Buffer.from(gs2 + bare, 'utf8'),
    final(serverFirst: Buffer): { message: Buffer; expectedServerFinal: Buffer } {
      const sf = serverFirst.toString('utf8');
      const attrs = Object.fromEntries(sf.split(',').map((a) => [a.slice(0, 1), a.slice(2)]));
      const salt = Buffer.from(attrs['s'], 'base64');
      const iterations = Number(attrs['i']);
      const len = hash === 'sha1' ? 20 : 32;
      const salted = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, len, hash);
      const clientKey = createHmac(hash, salted).update('Client Key').digest();
      const storedKey = createHash(hash).update(clientKey).digest();
      const withoutProof = `c=${Buffer.from(gs2).toString('base64')},r=${attrs['r']}`;
      const authMessage = `${bare},${sf},${withoutProof}`;
      const sig = createHmac(hash, storedKey).update(authMessage).digest();
      const proof = Buffer.alloc(len);
      for (let i = 0; i < len; i++) proof[i] = clientKey[i] ^ sig[i];
      const serverKey = createHmac(hash, salted).update('Server Key').digest();
      const v = createHmac(hash, serverKey).update(authMessage).digest('base64');
      return {
        message: Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8'),
        expectedServerFinal: Buffer.from(`v=${v}`, 'utf8'),
      };
    },
  };
}
