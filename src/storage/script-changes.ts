/**
 * The two ScriptStore changes that write script files, each one locked section:
 * storing a script (PUTSCRIPT, and `tsieved migrate`'s put-if-absent), with the
 * filter file rewritten in step when the script is the active one, and renaming one
 * (RENAMESCRIPT), with the record of the active script following it.
 *
 * Must not know: the wire protocol, auth, sessions, config parsing.
 */
import { join } from 'node:path';
import type { Logger } from '../log/logger.js';
import { prepareWrite } from './atomic-write.js';
import { toStorageError } from './errors.js';
import { prepareThenLook } from './commit-writes.js';
import { ACTIVE_FILE, VERBATIM_FILE } from './layout.js';
import type { HeldFiles, LockedSections } from './locked-section.js';
import { encodeScriptFileName } from './script-names.js';
import { sha256, type StoreFiles } from './store-files.js';
import { StorageError, type Approval } from './types.js';

export interface PutOptions {
  /** Nothing is written when a script of that name exists. */
  readonly ifAbsent?: boolean;
  /** Asked on the exact bytes, under the lock, after the quota checks. */
  readonly approve?: Approval | undefined;
}

/** Stores a script: false when the name exists (`ifAbsent`) or `approve` refused (nothing written). */
export async function putScript(
  sections: LockedSections,
  log: Logger,
  name: string,
  content: Buffer,
  { ifAbsent = false, approve }: PutOptions,
): Promise<boolean> {
  const nfc = sections.files.checkName(name);
  if (content.length > sections.files.limits.maxScriptBytes) sections.files.checkSpaceIn([], nfc, content.length);
  // Read below whatever the script (the record and the filter: when it exists and is
  // the active one), in the listing's round trip; over ordered FileOps (a file broker)
  // a read sent along costs no round trip of its own.
  const startReads = ({ files, guard, readAhead }: HeldFiles): ReturnType<StoreFiles['lookForPut']> => {
    const record = join(files.dir, ACTIVE_FILE);
    readAhead([join(files.dir, VERBATIM_FILE), ...(files.ops.ordered ? [record, guard.filterPath] : [])]);
    return files.lookForPut(nfc);
  };
  return sections.run(async (held) => {
    const { lock, files, guard } = held;
    const { exists, checkSpace } = await startReads(held);
    if (ifAbsent && exists) return false;
    checkSpace(content.length);
    if (approve && !(await approve(content))) return false;
    const enc = encodeScriptFileName(nfc);
    if (enc.nameFile) await files.writeNameFile(enc.nameFile, nfc);
    try {
      // Recorded active, and there (just looked at).
      let active = exists && (await files.recordedActive()) === nfc;
      if (active) {
        // Preserving a foreign filter can change which script is active; ask again.
        await guard.preserveForeign(lock);
        active = (await files.recordedActive()) === nfc;
      }
      // The filter first: if the script's rename then fails, the filter is put
      // back, and the client's NO is true (the other order would leave a new
      // script that the next repair at open makes live).
      const filter = active ? await guard.filterFor(nfc, content) : undefined;
      const writes = await prepareThenLook(files.ops, lock, [
        ...(filter ? [() => guard.prepareFilter(filter)] : []),
        () => prepareWrite(files.ops, join(files.dir, enc.file), content, { mode: 0o600 }),
      ]);
      // New bytes are Sieve (PUTSCRIPT validated them): no longer a preserved forward.
      const recorded = (await files.readVerbatim()).get(nfc);
      const unmark = recorded !== undefined && recorded !== sha256(content);
      // With nothing left to do under the lock after a success (no record to
      // change) the last rename carries the lock's release; a failure keeps the
      // lock for what follows it (the filter put back, the name file removed).
      await guard.commitWithFilter(writes, lock, { releaseLock: !unmark });
      if (unmark) await files.setVerbatim(nfc, undefined);
      log.info({ script: nfc, bytes: content.length, active }, 'script stored');
      return true;
    } catch (err) {
      // A refused write (disk full, quota) leaves no name file without its script.
      if (enc.nameFile && !(await files.exists(join(files.dir, enc.file)).catch(() => true))) {
        await files.ops.unlink(join(files.dir, enc.nameFile)).catch(() => undefined);
      }
      throw err;
    }
  }, startReads);
}

/** RENAMESCRIPT (RFC 5804 section 2.11.1): the record of the active script follows the name. */
export async function renameScript(
  sections: LockedSections,
  log: Logger,
  oldName: string,
  newName: string,
): Promise<void> {
  const from = sections.files.checkName(oldName);
  const to = sections.files.checkName(newName);
  await sections.run(async ({ lock, files }) => {
    const fromEnc = encodeScriptFileName(from);
    const toEnc = encodeScriptFileName(to);
    const fromPath = join(files.dir, fromEnc.file);
    const toPath = join(files.dir, toEnc.file);
    if (!(await files.exists(fromPath)))
      throw new StorageError('nonexistent', `no script named ${JSON.stringify(from)}`);
    // The new name must not exist (ALREADYEXISTS).
    if (await files.exists(toPath))
      throw new StorageError('already-exists', `a script named ${JSON.stringify(to)} exists`);
    const wasActive = (await files.readActive()) === from;
    if (toEnc.nameFile) await files.writeNameFile(toEnc.nameFile, to);
    // A preserved forward stays one under its new name (written before the rename:
    // an entry for a name that does not exist yet changes nothing).
    await files.setVerbatim(from, undefined, to);
    await lock.assertHeld();
    try {
      await files.ops.rename(fromPath, toPath);
    } catch (err) {
      await files.setVerbatim(to, undefined, from).catch(() => undefined);
      throw toStorageError(err, `cannot rename script ${JSON.stringify(from)}`);
    }
    if (wasActive) {
      // The filter's content is unchanged; only the recorded name follows.
      try {
        await files.writeActive(to);
      } catch (err) {
        await files.ops.rename(toPath, fromPath).catch((undo: unknown) => {
          // .active still names the old script, whose file now has the new name:
          // the next open's repair cannot tell which was meant, so say it loudly.
          log.error(
            { event: 'rename-undo-failed', from, to, err: undo },
            'could not undo a rename after recording the active script failed: .active and the script files are out of step',
          );
        });
        await files.setVerbatim(to, undefined, from).catch(() => undefined);
        throw err;
      }
    }
    if (fromEnc.nameFile) await files.ops.unlink(join(files.dir, fromEnc.nameFile)).catch(() => undefined);
    await files.ops.syncDir(files.dir);
    log.info({ from, to, active: wasActive }, 'script renamed');
  });
}
