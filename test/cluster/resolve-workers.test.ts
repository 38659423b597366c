// How many server processes `[server] workers` starts: a number as written; "auto"
// one per core, or half the cores (rounded up) when every session has a process of
// its own (PAM, or isolation = "process").
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { resolveWorkers } from '../../src/cluster/primary.js';
import { parseConfig } from '../../src/config/loader.js';

const cores = Math.max(1, availableParallelism());

function workersOf(toml: string): number {
  return resolveWorkers(parseConfig(toml));
}

describe('[server] workers', () => {
  it('a number is taken as written, whatever the backend', () => {
    expect(workersOf('[server]\nworkers = 3\n[auth]\nbackend = "pam"\n')).toBe(3);
    expect(workersOf('[server]\nworkers = 1\n[storage]\nisolation = "none"\n')).toBe(1);
  });

  it('"auto" without session processes is one per core', () => {
    expect(workersOf('[auth]\nbackend = "userdb"\nuserdb = "/x"\n')).toBe(cores);
    expect(workersOf('[server]\nworkers = "auto"\n[auth]\nbackend = "ldap"\nurl = "ldap://x"\n')).toBe(cores);
  });

  it('"auto" is half the cores, rounded up, when every session has its own process', () => {
    const half = Math.ceil(cores / 2);
    expect(workersOf('[auth]\nbackend = "pam"\n')).toBe(half);
    expect(workersOf('[auth]\nbackend = "userdb"\nuserdb = "/x"\n[storage]\nisolation = "process"\n')).toBe(half);
    // Never none, and on 2 cores one worker: no primary process at all.
    expect(half).toBeGreaterThanOrEqual(1);
    if (cores === 2) expect(half).toBe(1);
  });
});
