#!/usr/bin/env node
/**
 * The `tsieved` executable: sizes libuv's thread pool, then runs the CLI (cli.ts).
 *
 * Password hashing (libcrypt's yescrypt and bcrypt through koffi's async calls)
 * runs in libuv's thread pool beside file I/O and TLS key work; with the default
 * of 4 threads a few expensive hashes at once would stall every session's file
 * access. The pool reads UV_THREADPOOL_SIZE once, when it first starts, and Node's
 * ES module loader starts it to read the first module: setting the variable in
 * an ES module is too late (the pool then has 4 threads whatever it says). This
 * file is CommonJS, loaded without the pool, so the variable is set before the
 * first ES import starts it. An operator's own UV_THREADPOOL_SIZE wins.
 *
 * Must not know: anything of the CLI but where it is.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
void import('./cli.js');
