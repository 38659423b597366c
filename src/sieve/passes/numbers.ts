/**
 * Numbers (RFC 5228 section 2.4.1): Exim only knows upper-case K, M, G (a
 * lower-case one is left as a stray token: "missing block"), and the value must
 * fit its 64-bit unsigned long ("Numerical result out of range").
 *
 * Must not know: which command uses the number.
 */
import type { NumberArg } from '../ast.js';
import type { DiagnosticSink } from '../diagnostics.js';

const UNITS: Record<string, bigint> = { '': 1n, K: 1024n, M: 1024n ** 2n, G: 1024n ** 3n };
const LIMIT = 2n ** 64n;

/** The value, or undefined after reporting why it is unusable. */
export function checkNumber(n: NumberArg, sink: DiagnosticSink): bigint | undefined {
  const unit = UNITS[n.unit];
  if (unit === undefined) {
    sink.error(
      n,
      `number quantifier "${n.unit}" must be upper case ("${n.unit.toUpperCase()}"); Exim does not read "${n.digits}${n.unit}" as a number`,
      'dialect',
    );
    return undefined;
  }
  const value = BigInt(n.digits) * unit;
  if (value >= LIMIT) {
    sink.error(n, `number ${n.digits}${n.unit} is too large (Exim's limit is 2^64-1)`, 'dialect');
    return undefined;
  }
  return value;
}
