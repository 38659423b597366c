/**
 * What Exim does with a user's mail under a given filter file, asked of the real
 * Exim: `exim -v -bf FILE -bfd DOMAIN -bfl LOCALPART -bfp PREFIX -bfs SUFFIX`
 * (docs/exim-dialect.md, "Testing a filter") for a few probe messages (probes.ts),
 * and the outcomes compared and put in words ("forward to A becomes forward to B").
 *
 * The filter bytes are written to a private temp file and Exim reads that, run as
 * the user (uid/gid) when we are root: an Exim filter's string expansions, such as
 * `${run{...}}`, are evaluated by `-bf`, and the user's own file must never run them
 * as root. `-bf` exits 0 even when a Sieve filter fails, so its text is read: the
 * Sieve actions come from `-v` on stderr (`fileinto 'X'`, `redirect 'A'`, the
 * vacation decision), Exim filters and forward lists print theirs on stdout.
 *
 * Must not know: the old layouts, the store, the report's layout, which messages probe.
 */
import { spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeAddress, probesFor, type Address, type Probe } from './probes.js';

export type { Address } from './probes.js';

export interface EximRunner {
  readonly binary: string;
  /** Exim configuration passed with -C, if not the system one. */
  readonly configFile?: string;
  /** As root: run Exim as this user. */
  readonly uid?: number;
  readonly gid?: number;
}

/** One message's fate: a set of outcomes, e.g. `inbox`, `forward a@b`, `file Junk`, `vacation`, `error ...`. */
export type Outcome = readonly string[];

const SENDER = 'probe@example.net';

function run(runner: EximRunner, args: string[], input: string): Promise<{ text: string; failed?: string }> {
  return new Promise((resolve) => {
    const child = spawn(runner.binary, [...(runner.configFile ? ['-C', runner.configFile] : []), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(runner.uid !== undefined ? { uid: runner.uid } : {}),
      ...(runner.gid !== undefined ? { gid: runner.gid } : {}),
      timeout: 20_000,
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', (err) => resolve({ text: out, failed: err.message }));
    child.on('close', (code, signal) =>
      resolve({
        text: out,
        ...(signal ? { failed: `killed by ${signal}` } : code === 127 ? { failed: 'not runnable' } : {}),
      }),
    );
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** Reads `exim -v -bf` output into a sorted set of outcomes; `self` is the user's own address. */
export function parseOutcome(text: string, self: string): Outcome {
  const out = new Set<string>();
  const lines = text.split('\n');
  const own = (a: string): boolean => a.toLowerCase() === self.toLowerCase();
  let inForwardList = false;
  for (const raw of lines) {
    const line = raw.trimEnd();
    let m: RegExpExecArray | null;
    if (inForwardList) {
      if ((m = /^ {2}(\S.*)$/.exec(line))) {
        const a = m[1];
        if (a.startsWith('/')) out.add(`file ${a}`);
        else if (a.startsWith('|')) out.add(`pipe ${a.slice(1)}`);
        else out.add(own(a) ? 'inbox' : `forward ${a}`);
        continue;
      }
      inForwardList = false;
    }
    if (/^exim: forward file generated:/.test(line)) inForwardList = true;
    else if ((m = /^fileinto `(.*)'$/.exec(line))) out.add(m[1] === 'inbox' ? 'inbox' : `file ${m[1]}`);
    else if ((m = /^redirect `(.*)'$/.exec(line))) out.add(own(m[1]) ? 'inbox' : `forward ${m[1]}`);
    else if (/^Implicit keep$/.test(line)) out.add('inbox');
    else if (/^Sieve: mail was personal, vacation file/.test(line)) out.add('vacation');
    else if ((m = /^(?:Unseen )?[Dd]eliver message to: (\S+)/.exec(line)))
      out.add(own(m[1]) ? 'inbox' : `forward ${m[1]}`);
    else if ((m = /^(?:Unseen )?[Ss]ave message to: (.*)$/.exec(line))) out.add(`file ${m[1]}`);
    else if ((m = /^(?:Unseen )?[Pp]ipe message to: (.*)$/.exec(line))) out.add(`pipe ${m[1]}`);
    else if (/^Mail to: .*\(vacation\)/.test(line)) out.add('vacation');
    else if ((m = /^Mail to: (.*)$/.exec(line))) out.add(`mail to ${m[1]}`);
    else if (/^(?:Normal delivery will occur|Filtering did not set up a significant delivery)/.test(line))
      out.add('inbox');
    // The line number moves with the header lines tsieved writes; the error does not.
    else if ((m = /^(Sieve error: .*|Filter error: .*|exim: error in forward file: .*)$/.exec(line)))
      out.add(`error ${m[1].replace(/ (?:in|near) line \d+/, '')}`);
    else if ((m = /^(Freeze|Fail|Defer)\b(.*)$/.exec(line))) out.add(`${m[1].toLowerCase()}${m[2]}`);
  }
  return [...out].sort();
}

/** One probe's outcome, named as the report names it. */
export interface ProbeOutcome {
  readonly probe: string;
  readonly outcome: Outcome;
}

/** Outcomes of one filter (undefined: no filter file, normal delivery) for every probe. */
export async function outcomesOf(
  runner: EximRunner,
  filter: Buffer | undefined,
  address: Address,
): Promise<ProbeOutcome[]> {
  const probes: Probe[] = probesFor(address);
  if (filter === undefined) return probes.map((p) => ({ probe: p.name, outcome: ['inbox'] }));
  const dir = await mkdtemp(join(tmpdir(), 'tsieved-migrate-bf-'));
  try {
    const file = join(dir, 'filter');
    // Readable by the user Exim runs as and nobody else; the directory only lets them in.
    await writeFile(file, filter, { mode: 0o600 });
    if (runner.uid !== undefined) {
      await chown(file, runner.uid, runner.gid ?? -1);
      await chmod(dir, 0o711);
    }
    const results: ProbeOutcome[] = [];
    for (const probe of probes) {
      const args = [
        '-v',
        '-bf',
        file,
        '-bfd',
        address.domain,
        '-bfl',
        address.localPart,
        '-bfp',
        probe.affixes.prefix ?? '',
        '-bfs',
        probe.affixes.suffix ?? '',
        '-f',
        SENDER,
      ];
      const r = await run(runner, args, probe.message(probeAddress(address, probe)));
      if (r.failed !== undefined || !/Testing .* file "/.test(r.text)) {
        throw new Error(
          `${runner.binary} -bf did not run: ${r.failed ?? r.text.trim().split('\n').slice(-1)[0] ?? 'no output'}`,
        );
      }
      results.push({ probe: probe.name, outcome: parseOutcome(r.text, `${address.localPart}@${address.domain}`) });
    }
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function words(o: Outcome): string {
  if (o.length === 0) return 'the message is discarded';
  return o
    .map((x) => {
      if (x === 'inbox') return 'delivered to the inbox';
      if (x === 'vacation') return 'a vacation reply';
      if (x.startsWith('forward ')) return `forwarded to ${x.slice(8)}`;
      if (x.startsWith('file ')) return `filed into ${x.slice(5)}`;
      if (x.startsWith('error ')) return `the filter fails (${x.slice(6)})`;
      return x;
    })
    .join(', ');
}

/** Each probe whose outcome differs, in words; empty when routing is unchanged. Both lists come from the same probes. */
export function describeChanges(before: readonly ProbeOutcome[], after: readonly ProbeOutcome[]): string[] {
  const changes: string[] = [];
  before.forEach(({ probe, outcome: b }, i) => {
    const a = after[i]?.outcome ?? [];
    if (b.join('\n') === a.join('\n')) return;
    changes.push(`${probe}: ${words(b)}; afterwards ${words(a)}`);
  });
  return changes;
}
