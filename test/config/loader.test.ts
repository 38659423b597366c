import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../src/config/loader.js';
import { CLI } from '../helpers/tsieved.js';

function problems(toml: string): string[] {
  try {
    parseConfig(toml, 'test.toml');
  } catch (error) {
    if (error instanceof ConfigError) return [...error.problems];
    throw error;
  }
  return [];
}

describe('configuration', () => {
  it('gives every key its documented default', () => {
    const config = parseConfig('');
    expect(config.server.listen).toEqual(['127.0.0.1:4190']);
    expect(config.server.implicit_tls_listen).toEqual([]);
    expect(config.auth.backend).toBe('userdb');
    expect(config.auth.allow_plaintext).toBe(false);
    expect(config.storage.scripts_dir).toBe('{home}/sieve');
    expect(config.storage.filter_path).toBe('{home}/.forward');
    expect(config.storage.isolation).toBe('none');
    expect(config.server.idle_timeout_seconds).toBeGreaterThanOrEqual(1800);
  });

  it('names the path of an unknown key', () => {
    expect(problems('[server]\nlisten = ["127.0.0.1:4190"]\nlisen = []\n')).toEqual(['unknown key: server.lisen']);
    expect(problems('[nonsense]\n')).toEqual(['unknown key: nonsense']);
  });

  it('names the path of an ill-typed key', () => {
    expect(problems('[server]\nlisten = ["nohostport"]\n')[0]).toMatch(/^server\.listen\[0\]: /);
    expect(problems('[storage]\nmax_scripts = "ten"\n')[0]).toMatch(/^storage\.max_scripts: /);
    expect(problems('[auth]\nbackend = "kerberos"\n')[0]).toMatch(/^auth\.backend: /);
  });

  it('reports TOML syntax errors', () => {
    expect(problems('[server\n')).toHaveLength(1);
  });

  it('accepts listener tables with per-listener options', () => {
    const config = parseConfig(
      '[server]\nlisten = ["[::1]:4190", { address = "127.0.0.1:2000", allow_plaintext = true }]\n',
    );
    expect(config.server.listen[1]).toMatchObject({ address: '127.0.0.1:2000', allow_plaintext: true });
  });

  it('tsieved serve and config check stop with the key path on a bad config', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-config-'));
    const file = join(dir, 'bad.toml');
    writeFileSync(file, '[storage]\nscripts_dirr = "/x"\n');
    for (const args of [
      ['serve', '--config', file],
      ['config', 'check', '--config', file],
    ]) {
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 10_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('unknown key: storage.scripts_dirr');
    }
  });

  it('tsieved config check accepts a good config and refuses unreadable TLS files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-config-'));
    writeFileSync(join(dir, 'userdb'), '');
    const good = join(dir, 'good.toml');
    writeFileSync(
      good,
      `[auth]\nuserdb = "${dir}/userdb"\nallow_plaintext = true\n[sieve]\ncapabilities = ["fileinto"]\n`,
    );
    expect(execFileSync(process.execPath, [CLI, 'config', 'check', '--config', good], { encoding: 'utf8' })).toContain(
      'valid',
    );
    const badTls = join(dir, 'tls.toml');
    writeFileSync(
      badTls,
      `[tls]\ncert_file = "${dir}/none.pem"\nkey_file = "${dir}/none.key"\n[auth]\nuserdb = "${dir}/userdb"\n[sieve]\ncapabilities = ["fileinto"]\n`,
    );
    const r = spawnSync(process.execPath, [CLI, 'config', 'check', '--config', badTls], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('[tls] cert_file');
    expect(r.stderr).toContain('[tls] key_file');
  });

  it('tsieved serve refuses a configuration in which nobody could log in', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-config-'));
    writeFileSync(join(dir, 'userdb'), '');
    const file = join(dir, 'nologin.toml');
    writeFileSync(
      file,
      `[server]\nlisten = ["127.0.0.1:0"]\n[auth]\nuserdb = "${dir}/userdb"\n[sieve]\ncapabilities = ["fileinto"]\n`,
    );
    const r = spawnSync(process.execPath, [CLI, 'serve', '--config', file], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no way to log in on 127.0.0.1:0');
  });

  it('without TLS every listener must allow plaintext, and config check says which does not', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-config-'));
    writeFileSync(join(dir, 'userdb'), '');
    const file = join(dir, 'onelistener.toml');
    writeFileSync(
      file,
      `[server]\nlisten = [{ address = "127.0.0.1:14198", allow_plaintext = true }, "[::1]:14199"]\n[auth]\nuserdb = "${dir}/userdb"\n[sieve]\ncapabilities = ["fileinto"]\n`,
    );
    const r = spawnSync(process.execPath, [CLI, 'config', 'check', '--config', file], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('no way to log in on [::1]:14199');
    expect(r.stderr).not.toContain('14198');
  });

  it('tsieved config check refuses Sieve capabilities the validator cannot check, naming them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-config-'));
    writeFileSync(join(dir, 'userdb'), '');
    const file = join(dir, 'regex.toml');
    writeFileSync(
      file,
      `[auth]\nuserdb = "${dir}/userdb"\nallow_plaintext = true\n[sieve]\ncapabilities = ["fileinto", "regex"]\n`,
    );
    const r = spawnSync(process.execPath, [CLI, 'config', 'check', '--config', file], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('"regex"');
  });
});
