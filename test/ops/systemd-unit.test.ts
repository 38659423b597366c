/**
 * contrib/systemd/tsieved.service's privilege settings, lived through without
 * systemd as PID 1: the real tsieved started under the unit's own
 * CapabilityBoundingSet, NoNewPrivileges and UMask (read from the shipped file and
 * reproduced with setpriv and the shell's umask), with the shipped PAM file
 * (contrib/pam/sieve, plus a tracing line). A member
 * logs in, activates a script, logs out; the per-session child the PAM helper
 * forks is stopped (SIGSTOP) before that, as a child stuck in a hung AFS server
 * would be: it neither reads its EOF nor acts on SIGTERM, so only the helper's
 * SIGKILL after its grace period ends it, which needs CAP_KILL for a process of
 * another uid. The PAM session must then be closed by the helper
 * (pam_close_session traced), and the child gone.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient } from '../helpers/client.js';
import { CLI, startTsieved, type RunningTsieved } from '../helpers/tsieved.js';
import { BROKER, PAM_HELPER, ROOT, needs, tool } from '../helpers/tools.js';
import { defaultPamHelperPath } from '../../src/auth/pam.js';
import { PamFixture, type TestUser } from '../storage-broker/pam-fixture.js';

const UNIT = resolve(__dirname, '../../contrib/systemd/tsieved.service');
const PAM_FILE = resolve(__dirname, '../../contrib/pam/sieve');
// gcc builds the fixture's tracing PAM module; openssl hashes the pwdfile passwords.
const enabled = needs(ROOT, PAM_HELPER, BROKER, 'setpriv', 'capsh', 'gcc', 'useradd', 'userdel', 'chpasswd', 'openssl');

/** `Key=value` of the unit's [Service] section (the last one wins, as in systemd). */
function serviceSetting(unit: string, key: string): string | undefined {
  const section = unit.slice(unit.indexOf('[Service]'), unit.indexOf('[Install]'));
  let value: string | undefined;
  for (const m of section.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))) value = m[1].trim();
  return value;
}

/** The unit's privilege settings as a command prefix: sh (umask) + setpriv. */
function unitWrapper(unit: string): { wrapper: string[]; caps: string[]; umask: string } {
  const caps = (serviceSetting(unit, 'CapabilityBoundingSet') ?? '').split(/\s+/).filter(Boolean);
  const umask = serviceSetting(unit, 'UMask') ?? '0022';
  const nnp = serviceSetting(unit, 'NoNewPrivileges') === 'yes';
  expect(caps.length).toBeGreaterThan(0);
  const bounding = ['-all', ...caps.map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`)].join(',');
  return {
    wrapper: [
      '/bin/sh',
      '-c',
      `umask ${umask} && exec "$@"`,
      'sh',
      tool('setpriv'),
      `--bounding-set=${bounding}`,
      ...(nnp ? ['--no-new-privs'] : []),
      '--',
    ],
    caps,
    umask,
  };
}

function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(\w+):\s*(.*)$/.exec(line);
    if (m) out[m[1]] = m[2]!;
  }
  return out;
}

/** Processes running as uid (from /proc). */
function processesOf(uid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .flatMap((d) => {
      try {
        const uids = procStatus(Number(d))['Uid']?.split(/\s+/).map(Number) ?? [];
        return uids[0] === uid ? [Number(d)] : [];
      } catch {
        return [];
      }
    });
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

describe('contrib/systemd: sandboxing', () => {
  it('keeps out the sandboxing that breaks OpenAFS clients, each with its reason', () => {
    const unit = readFileSync(UNIT, 'utf8');
    for (const key of ['ProtectKernelTunables', 'ProcSubset', 'MemoryDenyWriteExecute']) {
      expect(serviceSetting(unit, key), key).toBeUndefined();
      expect(unit, `a comment saying why ${key} is left out`).toMatch(new RegExp(`^# - ${key}[=:]`, 'm'));
    }
    expect(serviceSetting(unit, 'CapabilityBoundingSet')).toMatch(/\bCAP_KILL\b/);
  });
});

describe("contrib/systemd: the server under the unit's privilege settings", enabled, () => {
  let fx: PamFixture;
  let trace: string;
  let server: RunningTsieved;
  let alice: TestUser;
  let caps: string[];
  let umask: string;

  beforeAll(async () => {
    if (!existsSync(defaultPamHelperPath())) throw new Error('PAM helper not built: run `npm run build`');
    const unit = unitWrapper(readFileSync(UNIT, 'utf8'));
    caps = unit.caps;
    umask = unit.umask;
    fx = new PamFixture();
    trace = fx.traceLog('unit');
    alice = fx.user();
    // The shipped PAM file (pam_unix through Debian's common-* files), plus a line
    // that records the session's opening and closing.
    const service = fx.service('unit', [
      ...readFileSync(PAM_FILE, 'utf8').split('\n'),
      `session optional ${fx.traceModule} log=${trace}`,
    ]);
    server = await startTsieved(
      `
[server]
listen = [{ address = "127.0.0.1:0", allow_plaintext = true }]
auth_failure_delay_ms = 10
shutdown_grace_seconds = 1
[auth]
backend = "pam"
pam_service = "${service}"
allow_plaintext = true
[storage]
scripts_dir = "{home}/sieve"
filter_path = "{home}/.forward"
roots = ["${join(fx.dir, 'homes')}"]
isolation = "process"
[sieve]
capabilities = ["fileinto", "envelope"]
[metrics]
listen = "127.0.0.1:0"
[control]
socket = "${join(fx.dir, 'control.sock')}"
`,
      { wrapper: unit.wrapper, defaultWorkers: true },
    );
  }, 60_000);

  afterAll(async () => {
    try {
      if (server && server.process.exitCode === null)
        await Promise.race([server.stop(), new Promise((r) => setTimeout(r, 10_000))]);
      for (const pid of alice ? processesOf(alice.uid) : []) process.kill(pid, 'SIGKILL');
    } finally {
      fx?.cleanup();
    }
  });

  it("runs with exactly the unit's capability bounding set, no new privileges", () => {
    const status = procStatus(server.process.pid!);
    expect(status['NoNewPrivs']).toBe('1');
    const decoded = execFileSync(tool('capsh'), [`--decode=${status['CapBnd']}`], { encoding: 'utf8' });
    const bnd = decoded
      .replace(/^.*=/, '')
      .trim()
      .split(',')
      .map((c) => c.toUpperCase())
      .sort();
    expect(bnd).toEqual([...caps].sort());
    // Root's effective set is cut down to it too.
    expect(status['CapEff']).toBe(status['CapBnd']);
    expect(Number.parseInt(status['Umask'] ?? '', 8)).toBe(Number.parseInt(umask, 8));
  });

  it("a PAM login works, the files are the user's with the modes tsieved sets despite UMask", async () => {
    const c = await SieveTestClient.connect(server.port);
    const auth = await c.authenticatePlain(alice.name, alice.password);
    expect(auth.status, server.logs().slice(-3000)).toBe('OK');
    expect((await c.putScript('main', 'require "fileinto";\nfileinto "Lists";\n')).status).toBe('OK');
    expect((await c.command('SETACTIVE "main"')).statusLine).toBe('OK');
    const filter = statSync(join(alice.home, '.forward'));
    expect(filter.uid).toBe(alice.uid);
    // [storage] filter_mode (0644): Exim may read it whatever the service's UMask.
    expect(filter.mode & 0o777).toBe(0o644);
    expect(fx.readTrace(trace).map((e) => e.what)).toEqual(['open_session']);
    // The file broker the helper forked runs as the user.
    const child = Number((await server.waitForLog((l) => l.event === 'pam-session')).brokerPid);
    expect(procStatus(child)['Uid']?.split(/\s+/)[0]).toBe(String(alice.uid));
    // With the default workers ("auto": half the cores with PAM, so one process on
    // 2 cores and a primary with workers on more), who and /metrics answer for
    // whichever worker's PAM helper started that process.
    const who = JSON.parse(
      execFileSync(process.execPath, [CLI, 'who', '--json', '--config', server.configFile], { encoding: 'utf8' }),
    ) as { user: string; pid?: number }[];
    expect(who).toMatchObject([{ user: alice.name, pid: child }]);
    const metricsPort = (await server.waitForLog((l) => l.event === 'metrics-listening')).port as number;
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toMatch(/^tsieved_isolated_sessions 1$/m);
    // Stuck as in a hung file system: deaf to EOF and to SIGTERM.
    process.kill(child, 'SIGSTOP');

    await c.command('LOGOUT');
    c.close();
    // The server closes the pipes, waits, then asks the helper to stop the child
    // (SIGTERM, ignored), and the helper kills it after its grace period (about
    // 10 s in all). Without CAP_KILL the helper's kill fails, the child lives on,
    // and the server finally SIGKILLs the helper: no close_session.
    const closed = await until(() => fx.readTrace(trace).some((e) => e.what === 'close_session'), 25_000);
    expect(closed, server.logs().slice(-3000)).toBe(true);
    expect(fx.readTrace(trace).map((e) => e.what)).toEqual(['open_session', 'close_session']);
    expect(await until(() => processesOf(alice.uid).length === 0, 5_000)).toBe(true);
  }, 60_000);
});
