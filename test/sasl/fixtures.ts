/**
 * A real PasswdFileBackend over a temporary file, for driving the mechanisms.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PasswdFileBackend } from '../../src/auth/passwd-file.js';
import type { AuthContext } from '../../src/auth/types.js';
import { captureLogger, type Captured } from '../auth/util.js';

export const ctx: AuthContext = { remoteAddress: '192.0.2.7', secure: true };

export interface Fixture {
  readonly backend: PasswdFileBackend;
  readonly file: string;
  readonly cap: Captured;
  cleanup(): Promise<void>;
}

export async function passwdFixture(lines: string[]): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'tsieved-sasl-'));
  const file = join(dir, 'passwd');
  await writeFile(file, lines.join('\n') + '\n');
  const cap = captureLogger();
  const backend = new PasswdFileBackend(file, cap.log);
  await backend.reload();
  return { backend, file, cap, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export const b = (s: string): Buffer => Buffer.from(s, 'utf8');
