/**
 * Turning raw argument bytes into the values commands work with. Their shape
 * (string or number) is already typed from each command's declared signature.
 *
 * Must not know: what the values are used for.
 */
import { ProtocolError } from '../protocol/errors.js';
import { decodeNameBytes } from '../storage/script-names.js';

/** RFC 5804 section 1.6: script names are UTF-8; invalid sequences are refused, never repaired. */
export function decodeName(value: Buffer): string {
  // The same decoding the store uses for names read back from disk (a leading U+FEFF kept).
  const name = decodeNameBytes(value);
  if (name === undefined) throw ProtocolError.recoverable('Script name is not valid UTF-8');
  return name;
}
