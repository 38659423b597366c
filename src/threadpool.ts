/**
 * Sizes libuv's thread pool before anything uses it. Password hashing (libcrypt's
 * yescrypt, bcrypt) runs there through koffi's async calls, beside file I/O and TLS
 * key work; with the default of 4 threads a few expensive hashes at once would stall
 * every session's file access. Imported first by the CLI; an operator's own
 * UV_THREADPOOL_SIZE wins.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
