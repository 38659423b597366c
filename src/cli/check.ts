/**
 * `tsieved check [--config FILE] [--capabilities "cap1 cap2"] [--exim PATH]
 * [--json] FILE...`: validates files ("-" is standard input) with the same
 * profile the server would use and prints FILE:LINE:COL: severity: message.
 * Exit status: 0 all valid (warnings allowed), 1 some invalid, 2 usage error or
 * unreadable file.
 *
 * Must not know: the server.
 */
import { readFile } from 'node:fs/promises';
import { MAX_SCRIPT_BYTES_DEFAULT, SIEVE_DEFAULTS } from '../config/defaults.js';
import type { Config } from '../config/schema.js';
import { formatDiagnosticForTerminal, hasErrors, type Diagnostic } from '../sieve/diagnostics.js';
import { loadProfile } from '../sieve/load-profile.js';
import { validateScript } from '../sieve/validate.js';

export interface CheckIo {
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const USAGE = 'usage: tsieved check [--config FILE] [--capabilities "cap1 cap2"] [--exim PATH] [--json] FILE...';

interface CheckArgs {
  config?: string;
  capabilities?: string[];
  exim?: string;
  json: boolean;
  files: string[];
}

function parseArgs(argv: string[]): CheckArgs | string {
  const out: CheckArgs = { json: false, files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string | undefined => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      i++;
      return argv[i];
    };
    if (a === '--') {
      out.files.push(...argv.slice(i + 1));
      break;
    } else if (a === '--json') out.json = true;
    else if (a === '--config' || a.startsWith('--config=')) {
      const v = value();
      if (v === undefined) return '--config needs a file';
      out.config = v;
    } else if (a === '--capabilities' || a.startsWith('--capabilities=')) {
      const v = value();
      if (v === undefined) return '--capabilities needs a list';
      out.capabilities = v.split(/[\s,]+/).filter(Boolean);
    } else if (a === '--exim' || a.startsWith('--exim=')) {
      const v = value();
      if (v === undefined) return '--exim needs a path';
      out.exim = v;
    } else if (a.startsWith('-') && a !== '-') return `unknown option ${a}`;
    else out.files.push(a);
  }
  if (out.files.length === 0) return 'no files to check';
  return out;
}

async function readStream(s: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(typeof c === 'string' ? Buffer.from(c) : Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

/** Reads a configuration file (config/loader.ts), imported only for --config. */
export type ConfigLoader = (file: string) => Promise<Pick<Config, 'sieve' | 'storage'>>;

const loadConfigFile: ConfigLoader = async (file) => (await import('../config/loader.js')).loadConfig(file);

/**
 * `loadConfig` is for a caller that runs this module outside Node's module
 * loader (the bundle cli/check-bundle.ts loads), where an import() of its own
 * would not work.
 */
export async function runCheck(argv: string[], io: CheckIo, loadConfig = loadConfigFile): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    io.stderr.write(`tsieved check: ${args}\n${USAGE}\n`);
    return 2;
  }
  // Without --config, the defaults alone: the configuration loader and its
  // schema library are most of the start-up time of a check.
  let sieve: Config['sieve'] = { ...SIEVE_DEFAULTS };
  let maxScriptBytes = MAX_SCRIPT_BYTES_DEFAULT;
  if (args.config !== undefined) {
    try {
      const config = await loadConfig(args.config);
      sieve = { ...config.sieve };
      maxScriptBytes = config.storage.max_script_bytes;
    } catch (e) {
      io.stderr.write(`tsieved check: ${e instanceof Error ? e.message : String(e)}\n`);
      return 2;
    }
  }
  if (args.capabilities !== undefined) sieve.capabilities = args.capabilities;
  if (args.exim !== undefined) sieve.exim = args.exim;
  let profile;
  try {
    profile = await loadProfile(sieve, maxScriptBytes);
  } catch (e) {
    io.stderr.write(`tsieved check: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  let status = 0;
  const report: { file: string; valid: boolean; diagnostics: Diagnostic[] }[] = [];
  for (const file of args.files) {
    let bytes: Buffer;
    try {
      bytes = file === '-' ? await readStream(io.stdin) : await readFile(file);
    } catch (e) {
      io.stderr.write(`tsieved check: cannot read ${file}: ${e instanceof Error ? e.message : String(e)}\n`);
      status = 2;
      continue;
    }
    const diagnostics = validateScript(bytes, profile);
    const valid = !hasErrors(diagnostics);
    if (!valid && status === 0) status = 1;
    if (args.json) report.push({ file, valid, diagnostics });
    else for (const d of diagnostics) io.stdout.write(formatDiagnosticForTerminal(file, d) + '\n');
  }
  if (args.json) io.stdout.write(JSON.stringify({ extensions: profile.extensions, files: report }, null, 2) + '\n');
  return status;
}
