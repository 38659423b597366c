// The one mapping from failures to responses, on its own: every storage error kind
// gets its code and words a user can act on; details stay for the log.
import { describe, expect, it } from 'vitest';
import { failureToResponse, storeOpenFailureToResponse } from '../../src/commands/to-response.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { StorageError, type StorageErrorKind } from '../../src/storage/types.js';

const EXPECTED: Record<StorageErrorKind, string | undefined> = {
  nonexistent: 'NONEXISTENT',
  'already-exists': 'ALREADYEXISTS',
  active: 'ACTIVE',
  'quota-maxscripts': 'QUOTA/MAXSCRIPTS',
  'quota-maxsize': 'QUOTA/MAXSIZE',
  quota: 'QUOTA',
  'bad-name': undefined,
  'not-set-up': undefined,
  misconfigured: undefined,
  permission: undefined,
  trylater: 'TRYLATER',
  io: 'TRYLATER',
};

describe('failureToResponse', () => {
  for (const [kind, code] of Object.entries(EXPECTED) as [StorageErrorKind, string | undefined][]) {
    it(`maps storage error "${kind}" to NO${code ? ` (${code})` : ''}`, () => {
      const mapped = failureToResponse(new StorageError(kind, `detail of ${kind}`));
      expect(mapped.response.status).toBe('NO');
      expect(mapped.response.code).toBe(code);
      expect(mapped.unexpected).toBe(false);
      expect(mapped.detail).toContain(kind);
    });
  }

  it('keeps paths and errno out of the client text for io and permission errors, but logs them', () => {
    const cause = Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    const mapped = failureToResponse(new StorageError('io', 'writing /home/u/sieve/x.sieve', cause));
    expect(mapped.response.text).not.toContain('/home/u');
    expect(mapped.response.text).toContain('nothing was changed');
    expect(mapped.detail).toContain('/home/u/sieve/x.sieve');
    expect(mapped.detail).toContain('EIO');
    const denied = failureToResponse(new StorageError('permission', 'open /afs/x: EACCES'));
    expect(denied.response.text).not.toContain('/afs/x');
  });

  it('shows the message of errors that name what the user did wrong', () => {
    expect(failureToResponse(new StorageError('bad-name', 'script names may not contain NUL')).response.text).toBe(
      'script names may not contain NUL',
    );
  });

  it('answers a fatal protocol error with BYE and a recoverable one with NO', () => {
    expect(failureToResponse(ProtocolError.fatal('Line too long')).response).toEqual({
      status: 'BYE',
      text: 'Line too long',
    });
    expect(failureToResponse(ProtocolError.recoverable('Bad literal', 'QUOTA/MAXSIZE')).response).toEqual({
      status: 'NO',
      code: 'QUOTA/MAXSIZE',
      text: 'Bad literal',
    });
  });

  it('marks anything else as unexpected and answers TRYLATER without its text', () => {
    const mapped = failureToResponse(new RangeError('secret internals'));
    expect(mapped.unexpected).toBe(true);
    expect(mapped.response.code).toBe('TRYLATER');
    expect(mapped.response.text).not.toContain('secret');
    expect(mapped.detail).toContain('secret internals');
  });
});

describe('storeOpenFailureToResponse (a right password, but no storage)', () => {
  it('says a misconfigured server is misconfigured, without TRYLATER', () => {
    const r = storeOpenFailureToResponse(new StorageError('misconfigured', 'isolation = "none" as root'));
    expect(r.status).toBe('NO');
    expect(r.code).toBeUndefined();
    expect(r.text).toMatch(/misconfigured/);
    expect(r.text).not.toContain('isolation');
  });

  it('keeps TRYLATER for passing trouble', () => {
    expect(storeOpenFailureToResponse(new StorageError('trylater', 'worker died')).code).toBe('TRYLATER');
    expect(storeOpenFailureToResponse(new Error('boom')).code).toBe('TRYLATER');
  });
});
