import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { tokenCommandProblems } from '../../src/storage/broker/token-command.js';
import { brokerCommand, defaultBrokerPath } from '../../src/storage/broker/launcher.js';

const storage = (token_command: string[]) => configSchema.parse({ storage: { token_command } }).storage;

describe('token_command', () => {
  it('accepts the documented k5start form and no wrapper at all', () => {
    expect(tokenCommandProblems(storage(['k5start', '-qtU', '-f', '/etc/keytabs/user.daemon/{user}', '--']))).toEqual(
      [],
    );
    expect(
      tokenCommandProblems(storage(['k5start', '-f', '/k/{u1}/{u2}/{localpart}@{domain}', '-d', '{home}'])),
    ).toEqual([]);
    expect(tokenCommandProblems(storage([]))).toEqual([]);
  });

  it('names unknown placeholders and a templated program', () => {
    expect(tokenCommandProblems(storage(['k5start', '-f', '/k/{usr}']))).toEqual([
      expect.stringMatching(/unknown placeholder \{usr\}/),
    ]);
    expect(tokenCommandProblems(storage(['{home}/bin/wrap']))).toEqual([expect.stringMatching(/fixed name or path/)]);
  });

  it('is expanded by the server, once, in front of the broker', () => {
    const identity = { user: 'ann@example.org', home: '/home/ann', fields: {} };
    expect(brokerCommand(storage(['k5start', '-f', '/k/{u1}/{u2}/{localpart}@{domain}', '--']), identity)).toEqual([
      'k5start',
      '-f',
      '/k/a/an/ann@example.org',
      '--',
      defaultBrokerPath(),
    ]);
    expect(brokerCommand(storage([]), identity)).toEqual([defaultBrokerPath()]);
    // A value a placeholder cannot take (an empty domain) refuses rather than changing a keytab path.
    expect(() => brokerCommand(storage(['k5start', '-f', '/k/{domain}']), { user: 'ann', fields: {} })).toThrow();
  });
});
