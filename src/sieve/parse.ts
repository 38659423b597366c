/**
 * Parses a script: the fast reader (fast-parse.ts) for scripts that parse,
 * otherwise the generated Peggy parser, whose failures become diagnostics: a
 * syntax error keeps Peggy's position (the furthest point reached), a stack
 * overflow from absurd nesting becomes a "nests too deeply" error.
 *
 * Must not know: any semantic rule.
 */
import type { Script } from './ast.js';
import type { DiagnosticSink } from './diagnostics.js';
import { fastParse } from './fast-parse.js';
import { parse, SyntaxError as PeggySyntaxError } from './generated/parser.js';

function describeSyntaxError(e: PeggySyntaxError): string {
  // Messages raised with error() in the grammar are already worded for users.
  if (!e.message.startsWith('Expected ')) return e.message;
  const found = e.found === null ? 'end of script' : JSON.stringify(e.found);
  const names = [
    ...new Set(
      e.expected.map((x) =>
        x.type === 'literal'
          ? JSON.stringify(x.text)
          : x.type === 'other'
            ? x.description
            : x.type === 'end'
              ? 'end of script'
              : 'a character',
      ),
    ),
  ];
  const list = names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} or ${names[names.length - 1]}`;
  return `syntax error: expected ${list} but found ${found}`;
}

export function parseScript(text: string, sink: DiagnosticSink): Script | undefined {
  // The fast reader handles scripts that parse; the generated parser words the rest.
  const fast = fastParse(text);
  if (fast !== undefined) return fast;
  try {
    return parse(text, { grammarSource: 'script' });
  } catch (e) {
    if (e instanceof PeggySyntaxError) {
      // Peggy's own line and column count UTF-16 units; the sink counts characters.
      sink.error({ start: e.location.start.offset, end: e.location.end.offset }, describeSyntaxError(e), 'syntax');
    } else if (e instanceof RangeError) {
      sink.error({ line: 1, column: 1 }, 'script nests too deeply to be parsed', 'limit');
    } else {
      sink.error({ line: 1, column: 1 }, `internal error while parsing: ${String(e)}`, 'internal');
    }
    return undefined;
  }
}
