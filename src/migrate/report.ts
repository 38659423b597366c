/**
 * The human-readable migration summary: one block per user (counts, the active
 * script, where mail goes before and after as Exim sees it, each script's outcome,
 * what Exim's dialect rejects, problems with the old files) and a total line; and
 * the exit status it implies. A dry run and a real run print the same things.
 *
 * Must not know: how the results were produced.
 */
import { formatDiagnosticForTerminal } from '../sieve/index.js';
import type { ActiveOutcome, UserResult } from './run-user.js';
import type { Routing } from './prove.js';

export interface Totals {
  users: number;
  imported: number;
  unchanged: number;
  conflicts: number;
  failed: number;
  rejected: number;
  usersWithErrors: number;
  /** Users whose routing would change or could not be proven (and, in a real run, were left alone). */
  changed: string[];
}

const MAX_DIAGNOSTICS_PER_SCRIPT = 5;

export function userHasErrors(r: UserResult): boolean {
  return (
    r.fatal !== undefined ||
    r.problems.length > 0 ||
    r.active.kind === 'failed' ||
    r.scripts.some((s) => s.outcome === 'failed' || s.outcome === 'conflict')
  );
}

/** A user whose mail would go elsewhere (or might: unproven) unless the operator accepts it. */
export function routingNeedsConsent(r: UserResult): boolean {
  return r.routing !== undefined && r.routing.kind !== 'unchanged';
}

function routingLines(routing: Routing | undefined): string[] {
  if (routing === undefined) return [];
  switch (routing.kind) {
    case 'unchanged':
      return [
        `  routing: unchanged${routing.how === 'identical' ? ' (the filter file stays byte for byte the same)' : ' (compared by exim -bf)'}`,
      ];
    case 'unproven':
      return [`  routing: NOT PROVEN: ${routing.why}`];
    case 'changed':
      return ['  routing: CHANGES:', ...routing.changes.map((c) => `    - ${c}`)];
  }
}

function activeText(a: ActiveOutcome, dryRun: boolean): string {
  switch (a.kind) {
    case 'none':
      return 'no active script';
    case 'activated':
      return `active ${JSON.stringify(a.name)} (${dryRun ? 'would be activated' : 'activated'})`;
    case 'unchanged':
      return `active ${JSON.stringify(a.name)} (already active)`;
    case 'kept':
      return `tsieved's active script ${JSON.stringify(a.name)} kept (old active: ${JSON.stringify(a.wanted)})`;
    case 'settled':
      return `${JSON.stringify(a.name)} not activated again: an earlier run settled activation (${a.earlier}); no active script now`;
    case 'failed':
      return `active ${JSON.stringify(a.name)} NOT activated: ${a.detail}`;
  }
}

export function formatUser(r: UserResult, dryRun: boolean): string {
  const lines: string[] = [];
  // A refused user's outcomes are what a run would have done.
  const would = dryRun || r.refused ? 'would import' : 'imported';
  if (r.fatal !== undefined) {
    lines.push(`${r.user}: FAILED: ${r.fatal}`);
  } else if (r.nothingToMigrate) {
    lines.push(`${r.user}: nothing to migrate (no scripts in ${r.source})`);
  } else {
    const count = (o: string): number => r.scripts.filter((s) => s.outcome === o).length;
    const rejected = r.scripts.filter((s) => s.rejected).length;
    lines.push(
      `${r.user}: ${would} ${count('imported')}, unchanged ${count('unchanged')}, conflicts ${count('conflict')}, ` +
        `failed ${count('failed')}; ${activeText(r.active, dryRun || r.refused === true)}` +
        (rejected > 0 ? `; ${rejected} script(s) Exim would reject` : ''),
    );
  }
  for (const s of r.scripts) {
    const outcome = s.outcome === 'imported' ? would : s.outcome;
    lines.push(
      `  ${JSON.stringify(s.name)}: ${outcome}${s.detail ? ` (${s.detail})` : ''}${s.rejected ? '; Exim would reject it:' : ''}`,
    );
    const shown = s.rejected
      ? s.diagnostics.filter((d) => d.severity === 'error').slice(0, MAX_DIAGNOSTICS_PER_SCRIPT)
      : [];
    for (const d of shown) lines.push(`    ${formatDiagnosticForTerminal(s.file, d)}`);
  }
  lines.push(...routingLines(r.routing));
  if (r.switchTo) lines.push(`  from the switch on, Exim must read ${r.switchTo}`);
  if (r.refused)
    lines.push(
      '  NOT MIGRATED: routing would change or is not proven; nothing was changed (--accept-changes to migrate anyway)',
    );
  for (const p of r.problems) lines.push(`  ! ${p.file}: ${p.message}`);
  for (const n of r.notes) lines.push(`  note: ${n}`);
  return lines.join('\n') + '\n';
}

export function totalsOf(results: readonly UserResult[]): Totals {
  const t: Totals = {
    users: results.length,
    imported: 0,
    unchanged: 0,
    conflicts: 0,
    failed: 0,
    rejected: 0,
    usersWithErrors: 0,
    changed: [],
  };
  for (const r of results) {
    for (const s of r.refused ? [] : r.scripts) {
      if (s.outcome === 'imported') t.imported++;
      else if (s.outcome === 'unchanged') t.unchanged++;
      else if (s.outcome === 'conflict') t.conflicts++;
      else t.failed++;
      if (s.rejected) t.rejected++;
    }
    if (userHasErrors(r)) t.usersWithErrors++;
    if (routingNeedsConsent(r)) t.changed.push(r.user);
  }
  return t;
}

export function formatTotals(t: Totals, missing: readonly string[], dryRun: boolean, accepted = false): string {
  const head = dryRun ? 'dry run, nothing changed: ' : '';
  let out =
    `${head}${t.users} user(s): ${dryRun ? 'would import' : 'imported'} ${t.imported}, unchanged ${t.unchanged}, ` +
    `conflicts ${t.conflicts}, failed ${t.failed}; ${t.rejected} script(s) Exim would reject; ` +
    `${t.usersWithErrors} user(s) with errors\n`;
  if (missing.length > 0) out += `unknown user(s): ${missing.join(', ')}\n`;
  if (t.changed.length > 0) {
    out += `routing would change or is not proven for: ${t.changed.join(', ')}`;
    out += accepted
      ? ' (accepted with --accept-changes)\n'
      : `; ${dryRun ? 'a real run leaves them alone' : 'left alone'} unless --accept-changes is given\n`;
  }
  return out;
}
