// @ts-check
/**
 * The body of one file-I/O thread (a node:worker_threads Worker started by
 * storage/thread-ops.ts): it makes the FileOps system calls synchronously, in the
 * order they arrive, and answers each batch of calls with one message.
 *
 * Why a thread of our own instead of node:fs/promises: each promise call is one
 * round trip through libuv's thread pool (a futex wake and an eventfd wake per
 * call), and reading one file takes five of them (open, fstat, fstat, read,
 * close). Measured on the bench machine, a 4 KiB read cost 130-170 us of CPU that
 * way and about 20 us here, where it is one message and four plain system calls.
 *
 * It serves exactly the calls below on paths it is given and nothing else: no
 * path expansion, no policy (the store in the main thread decides). It writes only
 * to descriptors it opened itself with `create`, so a stale or made-up number can
 * never reach a socket or another store's file.
 *
 * Written in plain JavaScript (CommonJS) because a Worker loads a file as it is:
 * the build copies it beside the compiled code.
 *
 * Must not know: scripts, names, locking, what the files mean.
 */
'use strict';
const fs = require('node:fs');
const { parentPort } = require('node:worker_threads');

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;

/** Descriptors this thread opened for writing and has not closed. */
const owned = new Set();

/** @param {string} code @param {string} message */
function failure(code, message) {
  return Object.assign(new Error(message), { code });
}

/** @param {number} fd */
function ownedFd(fd) {
  if (!owned.has(fd)) throw failure('EBADF', `descriptor ${fd} is not an open file of this store`);
  return fd;
}

/** @param {fs.Stats} st */
function plainStat(st) {
  return { size: st.size, mtimeMs: st.mtimeMs, uid: st.uid, mode: st.mode, nlink: st.nlink };
}

/**
 * A regular file, whole. O_NONBLOCK, then fstat on the descriptor: a FIFO or device
 * is refused at once instead of blocking this thread; a file larger than
 * `maxBytes` (or grown past it while read) is refused.
 * @param {string} path @param {number} maxBytes
 */
function readRegular(path, maxBytes) {
  const fd = fs.openSync(path, O_RDONLY | O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw failure('ENOTREGULAR', `${path} is not a regular file`);
    if (st.size > maxBytes) throw failure('ETOOLARGE', `${path} is too large (${st.size} bytes)`);
    let buf = new Uint8Array(st.size + 1);
    let length = 0;
    for (;;) {
      if (length === buf.length) {
        if (length > maxBytes) throw failure('ETOOLARGE', `${path} is too large (grew while read)`);
        const bigger = new Uint8Array(Math.min(buf.length * 2, maxBytes + 1));
        bigger.set(buf);
        buf = bigger;
      }
      const n = fs.readSync(fd, buf, length, buf.length - length, null);
      if (n === 0) break;
      length += n;
    }
    return buf.subarray(0, length);
  } finally {
    fs.closeSync(fd);
  }
}

/** @param {string} path */
function syncDir(path) {
  const fd = fs.openSync(path, O_RDONLY | O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** @param {number} fd @param {Uint8Array} data */
function writeAll(fd, data) {
  let offset = 0;
  while (offset < data.length) offset += fs.writeSync(fd, data, offset, data.length - offset);
}

/** @param {number} fd */
function closeOwned(fd) {
  owned.delete(ownedFd(fd));
  fs.closeSync(fd);
}

/** @param {string} path @param {number} mode */
function create(path, mode) {
  const fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
  owned.add(fd);
  return fd;
}

/**
 * A new file made whole (FileOps createFile): created 0600, all of `data` written,
 * the mode set, fsync when asked, closed with its error; stops at the first
 * failure, which says whether the file had been made (`created`).
 * @param {string} path @param {{ data: Uint8Array, mode?: number, sync?: boolean }} o
 */
function createFile(path, o) {
  const fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  let failed;
  try {
    writeAll(fd, o.data);
    if (o.mode !== undefined) fs.fchmodSync(fd, o.mode);
    if (o.sync) fs.fsyncSync(fd);
  } catch (err) {
    failed = err;
  }
  try {
    fs.closeSync(fd);
  } catch (err) {
    failed ??= err;
  }
  if (failed !== undefined) throw Object.assign(/** @type {object} */ (failed), { created: true });
}

/** @type {Record<string, (a: any, b: any) => unknown>} */
const OPS = {
  create,
  createFile,
  write: (fd, data) => writeAll(ownedFd(fd), data),
  fchmod: (fd, mode) => fs.fchmodSync(ownedFd(fd), mode),
  fsync: (fd) => fs.fsyncSync(ownedFd(fd)),
  close: closeOwned,
  read: readRegular,
  readdir: (path) => fs.readdirSync(path),
  stat: (path) => plainStat(fs.statSync(path)),
  lstat: (path) => plainStat(fs.lstatSync(path)),
  rename: (from, to) => fs.renameSync(from, to),
  unlink: (path) => fs.unlinkSync(path),
  mkdir: (path, mode) => void fs.mkdirSync(path, { mode }),
  rmdir: (path) => fs.rmdirSync(path),
  syncDir,
};

/**
 * Whether the call run last succeeded: a call marked `c` runs only if it did
 * (FileOps.ifPreviousSucceeded), and is otherwise answered `s` (skipped), which
 * counts as failed for the call after it. The main thread sends such a call right
 * behind the one it depends on, in the same message. None run yet: not succeeded.
 */
let previousOk = false;

/** @typedef {{ id: number, op: string, a?: unknown, b?: unknown, c?: true }} Call */

/** @param {Call} call */
function run(call) {
  if (call.c === true && !previousOk) return { id: call.id, s: true };
  const op = OPS[call.op];
  try {
    if (op === undefined) throw failure('ENOSYS', `unknown file operation ${call.op}`);
    const v = op(call.a, call.b);
    previousOk = true;
    return { id: call.id, v };
  } catch (err) {
    previousOk = false;
    const e = /** @type {{ code?: unknown, message?: unknown, created?: unknown }} */ (err);
    const code = typeof e.code === 'string' ? e.code : 'EIO';
    return { id: call.id, e: { code, message: String(e.message), ...(e.created === true ? { created: true } : {}) } };
  }
}

if (parentPort === null) throw new Error('fs-thread.cjs runs as a worker thread only');
const port = parentPort;
port.on('message', (/** @type {Call[]} */ calls) => {
  port.postMessage(calls.map(run));
});
