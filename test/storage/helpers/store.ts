/** Temporary homes and FileStores on them, for the storage tests. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/log/logger.js';
import { FileStore, type FileStoreOptions } from '../../../src/storage/file-store.js';
import { StorageError, type StorageErrorKind } from '../../../src/storage/types.js';

export interface TempHome {
  readonly home: string;
  readonly scriptsDir: string;
  readonly filterPath: string;
  cleanup(): Promise<void>;
}

export async function tempHome(base = tmpdir()): Promise<TempHome> {
  const home = await mkdtemp(join(base, 'tsieved-store-'));
  return {
    home,
    scriptsDir: join(home, 'sieve'),
    filterPath: join(home, '.forward'),
    cleanup: () => rm(home, { recursive: true, force: true }),
  };
}

export function storeOptions(h: TempHome, over: Partial<FileStoreOptions> = {}): FileStoreOptions {
  return {
    scriptsDir: h.scriptsDir,
    filterPath: h.filterPath,
    limits: { maxScripts: 10, maxScriptBytes: 4096, maxTotalBytes: 0 },
    filterMode: '0644',
    createBelow: h.home,
    log: silentLogger(),
    ...over,
  };
}

export function openStore(h: TempHome, over: Partial<FileStoreOptions> = {}): Promise<FileStore> {
  return FileStore.open(storeOptions(h, over));
}

/** A store in `h` holding script `name` with `content`, active (its filter written). */
export async function withActive(h: TempHome, name: string, content: Buffer): Promise<void> {
  const store = await openStore(h);
  await store.put(name, content);
  await store.setActive(name);
}

/** The kind of the StorageError a promise rejects with (fails the test otherwise). */
export async function kindOf(p: Promise<unknown>): Promise<StorageErrorKind> {
  try {
    await p;
  } catch (err) {
    if (err instanceof StorageError) return err.kind;
    throw err;
  }
  throw new Error('expected the operation to fail with a StorageError');
}
