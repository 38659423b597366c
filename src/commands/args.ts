/**
 * Turning raw argument bytes into the values commands work with. Their shape
 * (string or number) is already typed from each command's declared signature.
 *
 * Must not know: what the values are used for.
 */
import { ProtocolError } from '../protocol/errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** RFC 5804 section 1.6: script names are UTF-8; invalid sequences are refused, never repaired. */
export function decodeName(value: Buffer): string {
  try {
    return utf8.decode(value);
  } catch {
    throw ProtocolError.recoverable('Script name is not valid UTF-8');
  }
}
