/**
 * src/config-check.ts, the one owner of configuration checks: each mistake that
 * start-up or the first login would run into is found, named by its key. Then the
 * real command: `tsieved config check` and `tsieved serve` report the same problems
 * (one code path), a SIGHUP with such a mistake keeps the running configuration
 * and names it, and as root with isolation = "none" a server refuses to start for
 * accounts of other uids, or (for an account added later) refuses that login as a
 * misconfiguration, not TRYLATER.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accountProblems, configProblems } from '../../src/config-check.js';
import { parseConfig } from '../../src/config/loader.js';
import type { Identity } from '../../src/auth/types.js';
import { CLI, startTsieved } from '../helpers/tsieved.js';
import { testCerts } from '../helpers/certs.js';
import { courierSha256 } from '../helpers/fixture.js';
import { SieveTestClient } from '../helpers/client.js';
import { ROOT, needs } from '../helpers/tools.js';

const run = promisify(execFile);
const base = (extra: string): string =>
  `[server]\nlisten = [{ address = "127.0.0.1:0", allow_plaintext = true }]\n${extra}`;
const problemsOf = (toml: string): string[] => configProblems(parseConfig(toml));

describe('configProblems', () => {
  it('names every invalid trusted_proxies entry', () => {
    const problems = problemsOf(
      base('trusted_proxies = ["10.0.0.0/33", "not-an-ip", "192.0.2.0/24", "2001:db8::/129"]\n'),
    );
    expect(problems.filter((p) => p.startsWith('[server] trusted_proxies'))).toEqual([
      expect.stringContaining('"10.0.0.0/33"'),
      expect.stringContaining('"not-an-ip"'),
      expect.stringContaining('"2001:db8::/129"'),
    ]);
  });

  it('names an Exim binary that cannot run as sieve.exim', () => {
    const problems = problemsOf(base('[sieve]\nexim = "/usr/sbin/exim5"\n'));
    expect(problems).toContainEqual(
      expect.stringMatching(/^sieve\.exim = "\/usr\/sbin\/exim5" cannot run \(no such file\)/),
    );
    expect(problemsOf(base('[sieve]\nexim = "/etc/passwd"\n'))).toContainEqual(
      expect.stringMatching(/^sieve\.exim = "\/etc\/passwd" cannot run \(not executable\)/),
    );
    expect(problemsOf(base('[sieve]\nexim_config = "/nonexistent/exim.conf"\n'))).toContainEqual(
      expect.stringMatching(/^sieve\.exim_config/),
    );
  });

  it('PAM: a service without a file in /etc/pam.d, and {domain} that PAM names never have', () => {
    const problems = problemsOf(
      base(
        '[auth]\nbackend = "pam"\npam_service = "no-such-service-tsieved"\n[storage]\ntoken_command = ["k5start", "-f", "/etc/keytabs/{domain}/{localpart}", "--"]\n',
      ),
    );
    expect(problems).toContainEqual(
      expect.stringContaining(
        'pam_service = "no-such-service-tsieved": there is no /etc/pam.d/no-such-service-tsieved',
      ),
    );
    expect(problems).toContainEqual(
      expect.stringContaining(
        '[storage] token_command "/etc/keytabs/{domain}/{localpart}": {domain} is empty for PAM accounts',
      ),
    );
    // An existing service is fine.
    expect(
      problemsOf(base('[auth]\nbackend = "pam"\npam_service = "login"\n')).filter((p) => p.includes('pam_service')),
    ).toEqual([]);
  });

  it('LDAP settings that cannot work', () => {
    expect(problemsOf(base('[auth]\nbackend = "ldap"\n'))).toContainEqual(
      expect.stringContaining('auth.url is required'),
    );
    expect(problemsOf(base('[auth]\nbackend = "ldap"\nurl = "http://x"\nbase = "dc=x"\n'))).toContainEqual(
      expect.stringContaining('is not an ldap:// or ldaps:// URL'),
    );
  });

  it('a userdb that does not exist, and listeners nobody can log in on', () => {
    expect(problemsOf(base('[auth]\nuserdb = "/nonexistent/userdb"\n'))).toContainEqual(
      expect.stringContaining('[auth] userdb = "/nonexistent/userdb" does not exist'),
    );
    expect(problemsOf('[server]\nlisten = ["127.0.0.1:0"]\n')).toContainEqual(
      expect.stringMatching(/^no way to log in on 127\.0\.0\.1:0/),
    );
  });
});

describe('accountProblems', () => {
  const account = (user: string, uid = process.getuid?.() ?? 0): Identity => ({
    user,
    uid,
    gid: uid,
    home: `/srv/homes/${user}`,
    fields: {},
  });

  it('a token_command {domain} that is empty for some accounts, with how many and one of them', () => {
    const config = parseConfig(
      base('[storage]\ntoken_command = ["k5start", "-f", "/etc/keytabs/{domain}/{localpart}", "--"]\n'),
    );
    const problems = accountProblems(config, [account('anna@example.org'), account('bert'), account('carl')]);
    expect(problems).toEqual([
      expect.stringMatching(
        /^\[storage\] token_command "\/etc\/keytabs\/\{domain\}\/\{localpart\}" cannot be expanded: .*\(2 accounts, e\.g\. bert\)$/,
      ),
    ]);
  });

  it('as root with isolation = "none": accounts of other uids cannot be served', needs(ROOT), () => {
    const config = parseConfig(base(''));
    const problems = accountProblems(config, [account('root-ok', 0), account('alice', 1000)]);
    expect(problems).toEqual([
      expect.stringMatching(
        /isolation = "none" while running as root .*set isolation = "process".*\(1 account, e\.g\. alice\)$/,
      ),
    ]);
    expect(accountProblems(parseConfig(base('[storage]\nisolation = "process"\n')), [account('alice', 1000)])).toEqual(
      [],
    );
  });
});

describe('tsieved config check, serve and SIGHUP run the same checks', () => {
  let dir: string;
  let userdb: string;
  const certs = testCerts();
  const config = (extra: string): string => `
[server]
listen = ["127.0.0.1:0"]
auth_failure_delay_ms = 10
${extra}
[tls]
cert_file = "${certs.certFile}"
key_file = "${certs.keyFile}"
[auth]
backend = "userdb"
userdb = "${userdb}"
[storage]
roots = ["${dir}"]
[sieve]
capabilities = ["fileinto"]
`;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'tsieved-config-check-'));
    userdb = join(dir, 'userdb');
    writeFileSync(
      userdb,
      `alice@example.org\tuid=${process.getuid?.() ?? 0}|gid=${process.getgid?.() ?? 0}|home=${join(dir, 'alice')}|systempw=${courierSha256('pw')}\n`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function cli(args: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
    try {
      const r = await run(process.execPath, [CLI, ...args], { timeout: 20_000 });
      return { code: 0, stderr: r.stderr, stdout: r.stdout };
    } catch (e) {
      const err = e as { code?: number; stderr?: string; stdout?: string };
      return { code: err.code ?? 1, stderr: err.stderr ?? '', stdout: err.stdout ?? '' };
    }
  }

  it('config check and serve both report every problem, one per line, and exit 1', async () => {
    const file = join(dir, 'bad.toml');
    writeFileSync(
      file,
      config('trusted_proxies = ["10.0.0.0/33", "not-an-ip"]').replace(
        'capabilities = ["fileinto"]',
        'exim = "/usr/sbin/exim5"',
      ),
    );
    const check = await cli(['config', 'check', '--config', file]);
    expect(check.code).toBe(1);
    const lines = check.stderr.trim().split('\n');
    expect(lines).toEqual([
      expect.stringContaining('"10.0.0.0/33"'),
      expect.stringContaining('"not-an-ip"'),
      expect.stringContaining('sieve.exim = "/usr/sbin/exim5" cannot run'),
    ]);
    const serve = await cli(['serve', '--config', file]);
    expect(serve.code).toBe(1);
    expect(serve.stderr.trim().split('\n')).toEqual(lines);
  });

  it('a SIGHUP with such a mistake keeps the running configuration and names the key', async () => {
    const server = await startTsieved(config(''));
    try {
      writeFileSync(server.configFile, config('trusted_proxies = ["10.0.0.0/33"]'));
      server.process.kill('SIGHUP');
      const failed = await server.waitForLog((l) => l.event === 'reload-failed', 20_000);
      expect(JSON.stringify(failed)).toContain('trusted_proxies: \\"10.0.0.0/33\\"');
      const c = await SieveTestClient.connect(server.port);
      expect(c.greeting.lines.some((l) => l.startsWith('"IMPLEMENTATION"'))).toBe(true);
      c.close();
    } finally {
      await server.stop();
    }
  });

  it(
    'as root with isolation = "none": refuses to start for another uid; a later account gets "misconfigured", not TRYLATER',
    needs(ROOT),
    async () => {
      const withOther = join(dir, 'userdb-other');
      writeFileSync(
        withOther,
        readFileSync(userdb, 'utf8') +
          `bob@example.org\tuid=1000|gid=1000|home=${join(dir, 'bob')}|systempw=${courierSha256('pw')}\n`,
      );
      const file = join(dir, 'none-as-root.toml');
      writeFileSync(file, config('').replace(`userdb = "${userdb}"`, `userdb = "${withOther}"`));
      const check = await cli(['config', 'check', '--config', file]);
      expect(check.code).toBe(1);
      expect(check.stderr).toMatch(/isolation = "none" while running as root .*set isolation = "process".*e\.g\. bob/);

      // Started while only uid 0 was listed; bob is added afterwards (no reload).
      const live = join(dir, 'userdb-live');
      writeFileSync(live, readFileSync(userdb, 'utf8'));
      const server = await startTsieved(config('').replace(`userdb = "${userdb}"`, `userdb = "${live}"`));
      try {
        writeFileSync(live, readFileSync(withOther, 'utf8'));
        const c = await SieveTestClient.connect(server.port);
        await c.startTls(certs.ca);
        const r = await c.authenticatePlain('bob@example.org', 'pw');
        expect(r.status).toBe('NO');
        expect(r.statusLine).not.toContain('TRYLATER');
        expect(r.statusLine).toMatch(/misconfigured/);
        c.close();
        const line = await server.waitForLog((l) => l.event === 'isolation-required', 20_000);
        expect(String(line.msg)).toMatch(/misconfigured: .*set \[storage\] isolation = "process"/);
      } finally {
        await server.stop();
      }
    },
  );
});
