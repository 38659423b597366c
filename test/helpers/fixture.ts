/**
 * A throwaway tsieved installation for tests: a temporary directory with a Courier
 * userdb, home directories, TLS certificates and a TOML configuration, plus the
 * running server. Each suite gets its own.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SieveTestClient } from './client.js';
import { testCerts } from './certs.js';
import { startTsieved, type RunningTsieved } from './tsieved.js';

export interface TestUser {
  readonly name: string;
  readonly password: string;
}

export interface Fixture {
  readonly dir: string;
  readonly homes: string;
  readonly server: RunningTsieved;
  readonly users: readonly TestUser[];
  readonly ca: Buffer;
  home(user: string): string;
  stop(): Promise<void>;
}

export interface FixtureOptions {
  readonly users?: readonly TestUser[];
  /** Extra TOML appended to each table: { server: 'key = value\n', ... }. */
  readonly extra?: Partial<Record<'server' | 'auth' | 'storage' | 'sieve' | 'tls' | 'log' | 'metrics', string>>;
  /** Replaces the default listener lines of [server]. */
  readonly listeners?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** [storage] filter_path; default "{home}/.forward". */
  readonly filterPath?: string;
}

export const ALICE: TestUser = { name: 'alice@example.org', password: 'correct horse' };
export const BOB: TestUser = { name: 'bob@example.org', password: 'b\u00f6b-p\u00e4ss' };

/** Courier's {SHA256}: base64 of the SHA-256 digest. */
export function courierSha256(password: string): string {
  return '{SHA256}' + createHash('sha256').update(password, 'utf8').digest('base64');
}

export async function startFixture(options: FixtureOptions = {}): Promise<Fixture> {
  const users = options.users ?? [ALICE, BOB];
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-fixture-'));
  const homes = join(dir, 'homes');
  const uid = process.getuid?.() ?? 1000;
  const gid = process.getgid?.() ?? 1000;
  const home = (user: string): string => join(homes, user);
  const lines = users.map((u) => {
    mkdirSync(home(u.name), { recursive: true });
    return `${u.name}\tuid=${uid}|gid=${gid}|home=${home(u.name)}|mail=${home(u.name)}/Maildir|systempw=${courierSha256(u.password)}`;
  });
  writeFileSync(join(dir, 'userdb'), lines.join('\n') + '\n');
  const certs = testCerts();
  const extra = options.extra ?? {};
  const toml = `
[server]
${options.listeners ?? `listen = ["127.0.0.1:0"]\nimplicit_tls_listen = ["127.0.0.1:0"]`}
${extra.server?.includes('auth_failure_delay_ms') ? '' : 'auth_failure_delay_ms = 50'}
${extra.server ?? ''}
[tls]
cert_file = "${certs.certFile}"
key_file = "${certs.keyFile}"
${extra.tls ?? ''}
[auth]
backend = "userdb"
userdb = "${join(dir, 'userdb')}"
${extra.auth ?? ''}
[storage]
scripts_dir = "{home}/sieve"
filter_path = "${options.filterPath ?? '{home}/.forward'}"
roots = ["${homes}"]
${extra.storage ?? ''}
[sieve]
capabilities = ["comparator-i;ascii-numeric", "copy", "encoded-character", "envelope", "fileinto", "subaddress", "vacation"]
${extra.sieve ?? ''}
[log]
level = "info"
${extra.log ?? ''}
[metrics]
${extra.metrics ?? ''}
[control]
socket = "${join(dir, 'control.sock')}"
`;
  const server = await startTsieved(toml, options.env ? { env: options.env } : {});
  const stop = async (): Promise<void> => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, homes, server, users, ca: certs.ca, home, stop };
}

/**
 * The two plain listeners of a fixture with a trusted clear-text listener bind in
 * no guaranteed order: tell them apart by what they offer before TLS (mechanisms
 * on the trusted one, `"SASL" ""` on the other).
 */
export async function listenerPorts(fx: Fixture): Promise<{ clear: number; starttls: number }> {
  let clear: number | undefined;
  let starttls: number | undefined;
  for (const { port, implicitTls } of fx.server.ports) {
    if (implicitTls) continue;
    const c = await SieveTestClient.connect(port);
    if (c.greeting.lines.includes('"SASL" ""')) starttls = port;
    else clear = port;
    c.close();
  }
  if (clear === undefined || starttls === undefined)
    throw new Error(`expected a clear-text and a STARTTLS listener: ${JSON.stringify(fx.server.ports)}`);
  return { clear, starttls };
}
