import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { pamWorkerCommand, tokenCommandProblems } from '../../src/storage/worker/token-command.js';
import { workerCommand } from '../../src/storage/worker/process-launcher.js';

const storage = (token_command: string[]) => configSchema.parse({ storage: { token_command } }).storage;

describe('token_command', () => {
  it('accepts the documented k5start form and no wrapper at all', () => {
    expect(tokenCommandProblems(storage(['k5start', '-qtU', '-f', '/etc/keytabs/user.daemon/{user}', '--']))).toEqual([]);
    expect(tokenCommandProblems(storage(['k5start', '-f', '/k/{u1}/{u2}/{localpart}@{domain}', '-d', '{home}']))).toEqual([]);
    expect(tokenCommandProblems(storage([]))).toEqual([]);
  });

  it('names unknown placeholders and a templated program', () => {
    expect(tokenCommandProblems(storage(['k5start', '-f', '/k/{usr}']))).toEqual([expect.stringMatching(/unknown placeholder \{usr\}/)]);
    expect(tokenCommandProblems(storage(['{home}/bin/wrap']))).toEqual([expect.stringMatching(/fixed name or path/)]);
  });

  it('puts the wrapper in front of the worker for the PAM helper, unexpanded', () => {
    expect(pamWorkerCommand(storage(['k5start', '-f', '/k/{user}', '--']))).toEqual(['k5start', '-f', '/k/{user}', '--', ...workerCommand()]);
  });
});
