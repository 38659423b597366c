/**
 * The synchronous validator: bytes in, diagnostics out, never an exception.
 * Order: input (bytes) -> a cheap nesting pre-scan (so the recursive parser is
 * never asked to go deeper than the limit) -> grammar -> require -> strings ->
 * structure (signatures and arguments) -> flow (placement, counts, nesting).
 *
 * Must not know: threads, the protocol or configuration files.
 */
import { DiagnosticSink, sortDiagnostics, type Diagnostic } from './diagnostics.js';
import { decodeInput } from './input.js';
import { parseScript } from './parse.js';
import type { PassContext } from './passes/context.js';
import { checkFlow } from './passes/flow.js';
import { checkRequires } from './passes/require.js';
import { checkStrings } from './passes/strings.js';
import { checkStructure } from './passes/structure.js';
import { prescanNesting } from './prescan.js';
import type { SieveProfile } from './profile.js';

export function validateScript(script: Buffer, profile: SieveProfile): Diagnostic[] {
  const sink = new DiagnosticSink();
  try {
    const { text, userLength } = decodeInput(script, profile.maxScriptBytes, sink);
    if (text === undefined) return sink.items;
    sink.setText(text, userLength);
    if (!prescanNesting(text, profile.maxNesting, sink)) return sink.items;
    const ast = parseScript(text, sink);
    if (ast === undefined) return sink.items;
    const ctx: PassContext = { profile, sink, source: text, required: new Set() };
    checkRequires(ast, ctx);
    checkStrings(ast, ctx);
    checkStructure(ast.commands, ctx);
    checkFlow(ast.commands, ctx);
  } catch (e) {
    sink.error(
      { line: 1, column: 1 },
      `internal validator error: ${e instanceof Error ? e.message : String(e)}`,
      'internal',
    );
  }
  return sortDiagnostics(sink.items);
}
