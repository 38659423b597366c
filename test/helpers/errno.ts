/**
 * The errno code a FileOps call rejects with (`EEXIST`, `ENOENT`, the broker's
 * `ENOTREGULAR`...), for tests of node:fs, the file threads and the file broker
 * alike. A call that succeeds fails the test.
 */
export async function errnoCodeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code;
  }
  throw new Error('expected the call to fail');
}
