/**
 * Starts the real tsieved (`node dist/tsieved.cjs serve --config FILE`, as built by
 * `npm test`) with a given TOML configuration, waits until it listens, and reports
 * the ports it bound (port 0 in the config = any free port).
 *
 * `[server] workers` defaults to one per core, but most tests are about what one
 * server process does (its log lines, its sessions), and on a shared test machine
 * twice the processes are only slower: a configuration that does not set
 * `workers` runs as one process here unless the test asks for the shipped default
 * (`defaultWorkers`), as the tests of the shipped configurations do. With more
 * than one worker the server is ready once the primary logs `cluster-ready`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseToml } from 'smol-toml';
import { resolveWorkers } from '../../src/cluster/primary.js';
import { parseConfig } from '../../src/config/loader.js';

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(PACKAGE_ROOT, 'dist/tsieved.cjs');

export interface RunningTsieved {
  /** First plain (STARTTLS) listener's port. */
  readonly port: number;
  /** First implicit-TLS listener's port, if any. */
  readonly tlsPort?: number;
  readonly ports: readonly { host: string; port: number; implicitTls: boolean }[];
  readonly process: ChildProcess;
  readonly configFile: string;
  /** Everything the server logged so far (pino JSON lines). */
  logs(): string;
  /** Parsed log lines. */
  logLines(): Record<string, unknown>[];
  /** The first log line matching, waiting for it (pino writes asynchronously). */
  waitForLog(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
  /** A command put before `node dist/tsieved.cjs serve ...` (e.g. setpriv with options); it must exec the rest. */
  readonly wrapper?: readonly string[];
  /** Keep `[server] workers` as configured or defaulted ("auto") instead of one process. */
  readonly defaultWorkers?: boolean;
}

export async function startTsieved(configToml: string, options: StartOptions = {}): Promise<RunningTsieved> {
  const dir = mkdtempSync(join(tmpdir(), 'tsieved-run-'));
  const configFile = join(dir, 'tsieved.toml');
  const toml = options.defaultWorkers ? configToml : oneWorkerUnlessSet(configToml);
  writeFileSync(configFile, withPrivateControl(toml));
  const workers = workerCount(toml);
  const argv = [...(options.wrapper ?? []), process.execPath, CLI, 'serve', '--config', configFile];
  const child = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  let output = '';
  const expected = countListeners(configToml);
  const ports: { host: string; port: number; implicitTls: boolean }[] = [];
  const ready = new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`tsieved did not start in time; output:\n${output}`)),
      options.timeoutMs ?? 20_000,
    );
    const onData = (chunk: Buffer): void => {
      const before = output.length;
      output += chunk.toString('utf8');
      for (const line of output.slice(before === 0 ? 0 : output.lastIndexOf('\n', before) + 1).split('\n')) {
        if (!line.includes('"event":"listening"')) continue;
        try {
          const entry = JSON.parse(line) as { host: string; port: number; implicitTls: boolean };
          if (!ports.some((p) => p.port === entry.port && p.host === entry.host))
            ports.push({ host: entry.host, port: entry.port, implicitTls: entry.implicitTls });
        } catch {
          /* partial line */
        }
      }
      if (ports.length >= expected && (workers === 1 || output.includes('"event":"cluster-ready"'))) {
        clearTimeout(timer);
        resolveReady();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tsieved exited with ${code} before listening; output:\n${output}`));
    });
  });
  await ready;
  const plain = ports.find((p) => !p.implicitTls);
  const tls = ports.find((p) => p.implicitTls);
  const logLines = (): Record<string, unknown>[] =>
    output
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  return {
    port: plain?.port ?? 0,
    ...(tls ? { tlsPort: tls.port } : {}),
    ports,
    process: child,
    configFile,
    logs: () => output,
    logLines,
    waitForLog: async (predicate, timeoutMs = 5000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = logLines().find(predicate);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no matching log line; output:\n${output}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `workers = 1` in [server] when the configuration does not say how many. */
export function oneWorkerUnlessSet(toml: string): string {
  // A test of a broken configuration gets it as written.
  if (configuredWorkers(toml) !== undefined) return toml;
  if (/^\[server\][ \t]*$/m.test(toml)) return toml.replace(/^\[server\][ \t]*$/m, '[server]\nworkers = 1');
  return `${toml}\n[server]\nworkers = 1\n`;
}

/** The server processes a configuration asks for ("auto" resolved by the server's own rule). */
function workerCount(toml: string): number {
  try {
    return resolveWorkers(parseConfig(toml));
  } catch {
    return 1; // a broken configuration: the server refuses it before any worker starts
  }
}

function configuredWorkers(toml: string): unknown {
  try {
    return (parseToml(toml) as { server?: { workers?: unknown } }).server?.workers;
  } catch {
    return 'unparsable';
  }
}

/** How many listeners a config declares (to know when start-up is complete). */
function countListeners(toml: string): number {
  const parsed = parseToml(toml) as { server?: { listen?: unknown[]; implicit_tls_listen?: unknown[] } };
  const plain = parsed.server?.listen?.length ?? 1;
  return Math.max(plain + (parsed.server?.implicit_tls_listen?.length ?? 0), 1);
}

/**
 * A test server never binds the system's default control socket
 * (/run/tsieved/control.sock): servers of parallel tests would meet there, and a
 * test must not leave files outside its temporary directory. A test of the
 * control socket names its own path.
 */
export function withPrivateControl(toml: string): string {
  const parsed = parseToml(toml) as { control?: unknown };
  return parsed.control === undefined
    ? `${toml}
[control]
socket = ""
`
    : toml;
}
