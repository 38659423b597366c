// dispatch() on its own: command lookup, state checks, argument shapes and the
// mapping of a failing command, without a socket or a spawned server.
import { describe, expect, it } from 'vitest';
import { dispatch } from '../../src/commands/dispatch.js';
import { ANY_STATE, defineCommand, type CommandContext } from '../../src/commands/command.js';
import { silentLogger } from '../../src/log/logger.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { encodeResponse, no } from '../../src/protocol/response.js';
import type { Token } from '../../src/protocol/tokens.js';
import type { SessionState } from '../../src/session/session.js';
import { StorageError, type ScriptStore } from '../../src/storage/types.js';
import { NO_EVENTS, type ServerEvents } from '../../src/session/events.js';

const atom = (value: string): Token => ({ type: 'atom', value });
const str = (value: string): Token => ({ type: 'string', value: Buffer.from(value), literal: false });

function context(state: SessionState, store?: Partial<ScriptStore>, events: ServerEvents = NO_EVENTS): CommandContext {
  return {
    session: { state, store } as unknown as CommandContext['session'],
    services: { events } as CommandContext['services'],
    log: silentLogger(),
    write: async () => undefined,
    readContinuation: async () => ({ kind: 'closed' }),
  };
}

const wire = (d: Awaited<ReturnType<typeof dispatch>>): string => encodeResponse(d.result.response).toString('latin1');

describe('dispatch', () => {
  it('runs a known command case-insensitively (RFC 5804 section 4)', async () => {
    const d = await dispatch(context('non-authenticated'), [atom('noop'), str('t1')]);
    expect(d.command).toBe('NOOP');
    expect(d.bad).toBe(false);
    expect(wire(d)).toBe('OK (TAG "t1")\r\n');
  });

  it('answers NO to an unknown command and counts it as bad', async () => {
    const d = await dispatch(context('non-authenticated'), [atom('FROB')]);
    expect(d).toMatchObject({ command: 'FROB', bad: true });
    expect(wire(d)).toBe('NO "Unknown command FROB"\r\n');
  });

  it('answers NO to a line that does not start with a command name', async () => {
    const d = await dispatch(context('non-authenticated'), [str('NOOP')]);
    expect(d.bad).toBe(true);
    expect(wire(d)).toBe('NO "Expected a command name"\r\n');
  });

  it('refuses a command in the wrong state without running it', async () => {
    let listed = false;
    const store = { list: async () => ((listed = true), []) };
    const before = await dispatch(context('non-authenticated', store), [atom('LISTSCRIPTS')]);
    expect(wire(before)).toBe('NO "LISTSCRIPTS needs a login first"\r\n');
    expect(listed).toBe(false);
    const after = await dispatch(context('authenticated'), [atom('AUTHENTICATE'), str('PLAIN')]);
    expect(wire(after)).toBe('NO "AUTHENTICATE is not allowed after login"\r\n');
    expect(before.bad && after.bad).toBe(true);
  });

  it('checks the declared argument shapes', async () => {
    const ctx = context('authenticated', { list: async () => [] });
    expect(wire(await dispatch(ctx, [atom('GETSCRIPT')]))).toBe('NO "GETSCRIPT: missing arguments"\r\n');
    expect(wire(await dispatch(ctx, [atom('LISTSCRIPTS'), str('x')]))).toBe('NO "LISTSCRIPTS: too many arguments"\r\n');
    expect(wire(await dispatch(ctx, [atom('GETSCRIPT'), atom('x')]))).toMatch(
      /^NO "GETSCRIPT: .* must be a quoted string or a literal"\r\n$/,
    );
    // RFC 5804 section 4: numbers are 32-bit unsigned.
    const tooBig = await dispatch(ctx, [atom('HAVESPACE'), str('s'), atom('4294967296')]);
    expect(wire(tooBig)).toMatch(/^NO "HAVESPACE: .* must be a number"\r\n$/);
    expect(tooBig.bad).toBe(true);
  });

  it('maps a storage failure of a running command through to-response, and reports its kind', async () => {
    const kinds: string[] = [];
    const ctx = context(
      'authenticated',
      {
        get: async () => {
          throw new StorageError('nonexistent', 'no script "x"');
        },
      },
      { ...NO_EVENTS, storageError: (kind) => kinds.push(kind) },
    );
    const d = await dispatch(ctx, [atom('GETSCRIPT'), str('x')]);
    expect(d.bad).toBe(false);
    expect(wire(d)).toBe('NO (NONEXISTENT) "no script \\"x\\""\r\n');
    expect(kinds).toEqual(['nonexistent']);
  });

  it('hides an unexpected failure behind TRYLATER', async () => {
    const ctx = context('authenticated', {
      list: async () => {
        throw new TypeError('x is undefined');
      },
    });
    const d = await dispatch(ctx, [atom('LISTSCRIPTS')]);
    expect(wire(d)).toBe('NO (TRYLATER) "Internal error; nothing was changed, please try again later"\r\n');
  });

  it('reports a QUOTA/MAXSIZE frame error only for PUTSCRIPT (RFC 5804 section 2.12)', async () => {
    const tooBig = ProtocolError.recoverable('Script too large', 'QUOTA/MAXSIZE');
    const put = await dispatch(context('authenticated'), [atom('PUTSCRIPT')], tooBig);
    expect(wire(put)).toBe('NO (QUOTA/MAXSIZE) "Script too large"\r\n');
    const check = await dispatch(context('authenticated'), [atom('CHECKSCRIPT')], tooBig);
    expect(wire(check)).toBe('NO "Script too large"\r\n');
    expect(put.bad || check.bad).toBe(false);
  });
});

describe('defineCommand', () => {
  it('types each argument from the declared signature (checked by tsc)', async () => {
    const echo = defineCommand({
      name: 'ECHO',
      states: ANY_STATE,
      args: [
        { name: 'text', kind: 'string' },
        { name: 'count', kind: 'number', optional: true },
      ],
      async run(_ctx, [text, count]) {
        const bytes: Buffer = text;
        // @ts-expect-error an optional argument may be undefined
        const n: number = count;
        // @ts-expect-error a string argument is a Buffer, not a number
        const wrong: number = text;
        return { response: no(`${bytes.toString('latin1')} ${n ?? 0} ${typeof wrong}`) };
      },
    });
    const result = await echo.run(context('non-authenticated'), [Buffer.from('hi'), 2]);
    expect(encodeResponse(result.response).toString('latin1')).toBe('NO "hi 2 object"\r\n');
  });
});
