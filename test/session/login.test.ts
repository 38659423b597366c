/**
 * Session.login asks for the account's session slot and opens the store at the
 * same time (src/session/session.ts): the session is authenticated only when both
 * were given, and neither is left behind when the other fails.
 */
import { describe, expect, it } from 'vitest';
import type { ServerServices } from '../../src/session/services.js';
import { Session } from '../../src/session/session.js';
import type { ScriptStore } from '../../src/storage/types.js';

/** A launcher whose stores say when they are closed; `fail` makes open() throw. */
function services(fail = false) {
  const events: string[] = [];
  const launcher = {
    async open() {
      await new Promise((r) => setTimeout(r, 5));
      if (fail) throw new Error('no store');
      events.push('opened');
      return { close: async () => void events.push('closed') } as unknown as ScriptStore;
    },
  };
  return { events, services: { stores: launcher } as unknown as ServerServices };
}

const origin = { remoteAddress: '192.0.2.1', implicitTls: false } as never;
const identity = { user: 'alice', home: '/nonexistent', fields: {} };

describe('Session.login', () => {
  it('is authenticated once the store is open and the slot given, and gives the slot back at logout', async () => {
    const { events, services: s } = services();
    const session = new Session(s, origin, () => []);
    let released = 0;
    expect(
      await session.login(
        identity,
        undefined,
        Promise.resolve(() => void released++),
      ),
    ).toBe(true);
    expect([session.state, session.user, events]).toEqual(['authenticated', 'alice', ['opened']]);
    await session.logout();
    expect([released, events]).toEqual([1, ['opened', 'closed']]);
  });

  it('closes the store it opened meanwhile when the slot is refused', async () => {
    const { events, services: s } = services();
    const session = new Session(s, origin, () => []);
    expect(await session.login(identity, undefined, Promise.resolve(undefined))).toBe(false);
    expect([session.state, session.user, events]).toEqual(['non-authenticated', undefined, ['opened', 'closed']]);
  });

  it('gives the slot back when the store cannot be opened', async () => {
    const { services: s } = services(true);
    const session = new Session(s, origin, () => []);
    let released = 0;
    await expect(
      session.login(
        identity,
        undefined,
        Promise.resolve(() => void released++),
      ),
    ).rejects.toThrow('no store');
    expect([released, session.state]).toEqual([1, 'non-authenticated']);
  });
});
