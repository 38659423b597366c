/**
 * What every semantic pass receives: the profile, the sink for diagnostics and
 * the capabilities the script required.
 *
 * Must not know: any individual pass.
 */
import type { DiagnosticSink } from '../diagnostics.js';
import type { SieveProfile } from '../profile.js';

export interface PassContext {
  profile: SieveProfile;
  sink: DiagnosticSink;
  /** The decoded script text the AST's offsets point into. */
  source: string;
  /** Capabilities named by valid `require` commands (filled by the require pass). */
  required: Set<string>;
}
