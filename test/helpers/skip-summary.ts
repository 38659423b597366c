/**
 * A vitest reporter that ends a run with skipped tests with one short summary: what
 * was missing (programs, root, the built PAM helper), how many tests each skipped,
 * and the one command that installs every program the suite drives. The reasons come
 * from the test meta that needs() (tools.ts) sets; a test skipped by an older
 * `skipIf(!haveTools(...))` guard is counted as "other".
 *
 * Must not know: which test needs what (the tests say so themselves).
 */
import type { Reporter, TestModule } from 'vitest/node';
import { ROOT } from './tools.js';

export default class SkipSummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const byReason = new Map<string, number>();
    let other = 0;
    let total = 0;
    for (const module of testModules) {
      for (const test of module.children.allTests('skipped')) {
        total += 1;
        const missing = test.meta().missing;
        if (!missing || missing.length === 0) {
          other += 1;
          continue;
        }
        for (const what of missing) byReason.set(what, (byReason.get(what) ?? 0) + 1);
      }
    }
    if (total === 0) return;
    const counts = [...byReason].sort((x, y) => y[1] - x[1]).map(([what, n]) => `${what} (${n})`);
    if (other > 0) counts.push(`other reasons (${other})`);
    const lines = ['', `${total} tests skipped; missing, with the number of tests each skipped: ${counts.join(', ')}.`];
    const programs = [...byReason.keys()].filter((what) => what !== ROOT.label);
    if (programs.length > 0)
      lines.push('Install every program the tests use (Debian 12): sudo scripts/install-test-deps.sh');
    if (byReason.has(ROOT.label)) lines.push('Tests that need root run only as root (CI runs them all).');
    process.stdout.write(lines.join('\n') + '\n');
  }
}
