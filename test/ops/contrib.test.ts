/**
 * The shipped example configurations are accepted by the real programs that read
 * them: `haproxy -c` for contrib/haproxy/haproxy.cfg, `systemd-analyze verify` for
 * the systemd unit (with the tsieved path pointed at an existing binary, since the
 * package is not installed here).
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { needs, tool } from '../helpers/tools.js';

const CONTRIB = resolve(__dirname, '../../contrib');

function run(cmd: string, args: string[]): { code: number; output: string } {
  try {
    const output = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, output };
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    return { code: err.status ?? 1, output: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

describe('contrib/haproxy', needs('haproxy'), () => {
  it('haproxy accepts the example configuration', () => {
    const r = run(tool('haproxy'), ['-c', '-f', join(CONTRIB, 'haproxy/haproxy.cfg')]);
    expect(r.output).toMatch(/valid/i);
    expect(r.code).toBe(0);
  });

  it('sends PROXY v2 to every server, health checks included', () => {
    const cfg = readFileSync(join(CONTRIB, 'haproxy/haproxy.cfg'), 'utf8');
    expect(cfg).toMatch(/^\s*default-server .*\bsend-proxy-v2\b.*\bcheck-send-proxy\b/m);
    expect(cfg.match(/^\s*server /gm)).toHaveLength(2);
  });
});

describe('contrib/systemd', needs('systemd-analyze'), () => {
  it('systemd-analyze verify finds no problem in the unit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsieved-unit-'));
    try {
      const unit = readFileSync(join(CONTRIB, 'systemd/tsieved.service'), 'utf8');
      expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
      const file = join(dir, 'tsieved.service');
      writeFileSync(file, unit.replaceAll('/usr/bin/tsieved', '/bin/true'));
      const r = run(tool('systemd-analyze'), ['verify', file]);
      expect(r.output).toBe('');
      expect(r.code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
