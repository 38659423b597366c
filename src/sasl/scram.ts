/**
 * SASL SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), server side, without
 * channel binding: gs2 flag `n` or `y` is accepted (we advertise no -PLUS
 * variant, so `y` is honest, RFC 5802 section 6), `p=` is refused. Proofs are
 * checked with timingSafeEqual. For an unknown user the exchange runs to the end
 * with a salt derived from the user name and a per-process secret and a made-up
 * key, so an unknown user and a wrong password look alike on the wire.
 *
 * Must not know: base64 framing on the wire, sockets, where keys are stored.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  DEFAULT_SCRAM_ITERATIONS,
  scramHashName,
  type AuthBackend,
  type AuthContext,
  type Identity,
  type ScramAlgorithm,
  type ScramCredentials,
} from '../auth/types.js';
import { checkUserName, decodeUtf8 } from '../auth/identity-rules.js';
import { failure, type SaslExchange, type SaslStep } from './types.js';

const FAKE_SECRET = randomBytes(32);
const MAX_NONCE = 256;

/** RFC 5802 section 5.1 saslname: "=2C" is ",", "=3D" is "=", any other "=" is an error. */
export function decodeSaslName(s: string): string | undefined {
  if (!/^(?:[^=,]|=2C|=3D)*$/.test(s)) return undefined;
  return s.replace(/=2C|=3D/g, (m) => (m === '=2C' ? ',' : '='));
}

type State =
  | { readonly kind: 'new' }
  | { readonly kind: 'waitFirst' }
  | {
      readonly kind: 'waitFinal';
      readonly user: string;
      readonly gs2Header: string;
      readonly clientFirstBare: string;
      readonly serverFirst: string;
      readonly nonce: string;
      readonly credentials: ScramCredentials;
      /** undefined = unknown user (fake credentials). */
      readonly identity: Identity | undefined;
      /** Set when the entry may not log in from here (told after the proof). */
      readonly refusal: string | undefined;
    }
  | { readonly kind: 'done' };

export class ScramExchange implements SaslExchange {
  private state: State = { kind: 'new' };
  private readonly hash: 'sha1' | 'sha256';
  private readonly mech: string;

  /**
   * @param serverNonce for tests only (RFC test vectors fix the server's nonce
   *   part); by default 18 random bytes, base64.
   */
  constructor(
    private readonly backend: AuthBackend,
    private readonly algorithm: ScramAlgorithm,
    private readonly context: AuthContext,
    private readonly serverNonce: () => string = () => randomBytes(18).toString('base64'),
  ) {
    this.hash = scramHashName(algorithm);
    this.mech = `SCRAM-${algorithm}`;
  }

  async start(initialResponse: Buffer | undefined): Promise<SaslStep> {
    if (this.state.kind !== 'new') return this.fail('malformed', 'exchange already started');
    if (initialResponse === undefined) {
      // RFC 5804 section 2.1: no initial response -> empty challenge, then client-first.
      this.state = { kind: 'waitFirst' };
      return { kind: 'challenge', data: Buffer.alloc(0) };
    }
    return this.clientFirst(initialResponse);
  }

  async respond(response: Buffer): Promise<SaslStep> {
    const s = this.state;
    if (s.kind === 'waitFirst') return this.clientFirst(response);
    if (s.kind === 'waitFinal') return this.clientFinal(s, response);
    return this.fail('malformed', 'unexpected response');
  }

  private fail(reason: 'rejected' | 'unavailable' | 'malformed' | 'authzid', msg: string, user?: string): SaslStep {
    this.state = { kind: 'done' };
    return failure(reason, `${this.mech}: ${msg}`, user === undefined ? {} : { user });
  }

  private async clientFirst(bytes: Buffer): Promise<SaslStep> {
    const text = decodeUtf8(bytes);
    if (text === undefined) return this.fail('malformed', 'client-first-message is not UTF-8');
    // gs2-header = gs2-cbind-flag "," [authzid] ","  (RFC 5802 section 7)
    const m = /^(n|y|p=[^,]*),((?:a=[^,]*)?),(.*)$/s.exec(text);
    if (m === null) return this.fail('malformed', 'bad gs2 header');
    const [, flag, authzPart, bare] = m as unknown as [string, string, string, string];
    if (flag.startsWith('p=')) return this.fail('malformed', 'channel binding requested but not supported');
    const gs2Header = `${flag},${authzPart},`;
    const attrs = bare.split(',');
    // "m=" is reserved for mandatory extensions we do not know: must fail (section 5.1).
    if (attrs[0]?.startsWith('m=')) return this.fail('malformed', 'mandatory extension not supported');
    if (attrs.length < 2 || !attrs[0].startsWith('n=') || !attrs[1].startsWith('r=')) {
      return this.fail('malformed', 'client-first-message-bare is not n=...,r=...');
    }
    // Anything after the nonce must be extensions, attr-val = ALPHA "=" value
    // (RFC 5802 section 7); "r=abc,def" was accepted.
    if (!attrs.slice(2).every(isAttrVal))
      return this.fail('malformed', 'client-first-message-bare has text after the nonce that is no attribute');
    const user = decodeSaslName(attrs[0].slice(2));
    if (user === undefined) return this.fail('malformed', 'bad saslname');
    const nameCheck = checkUserName(user);
    if (!nameCheck.ok) return this.fail('malformed', nameCheck.reason);
    if (authzPart !== '') {
      const authzid = decodeSaslName(authzPart.slice(2));
      if (authzid === undefined) return this.fail('malformed', 'bad authzid');
      if (authzid !== '' && authzid !== user) {
        return this.fail(
          'authzid',
          `user ${JSON.stringify(user)} asked to act as ${JSON.stringify(authzid)}: proxy login not supported`,
          user,
        );
      }
    }
    const clientNonce = attrs[1].slice(2);
    // printable = %x21-2B / %x2D-7E (no comma)
    if (clientNonce.length === 0 || clientNonce.length > MAX_NONCE || !/^[\x21-\x2b\x2d-\x7e]+$/.test(clientNonce)) {
      return this.fail('malformed', 'bad client nonce', user);
    }
    if (this.backend.lookupScram === undefined)
      return this.fail('unavailable', `backend ${this.backend.name} has no SCRAM keys`, user);
    let credentials: ScramCredentials;
    let identity: Identity | undefined;
    let refusal: string | undefined;
    try {
      const found = await this.backend.lookupScram(user, this.algorithm, this.context);
      if (found.kind === 'unavailable') {
        return this.fail(
          'unavailable',
          `user ${JSON.stringify(user)}: backend ${this.backend.name} unavailable: ${found.reason}`,
          user,
        );
      }
      if (found.kind === 'found') {
        credentials = found.credentials;
        identity = found.identity;
        refusal = found.refusal;
      } else {
        credentials = found.decoy ?? this.fakeCredentials(user);
      }
    } catch (e) {
      return this.fail(
        'unavailable',
        `backend ${this.backend.name} failed: ${e instanceof Error ? e.message : String(e)}`,
        user,
      );
    }
    const nonce = clientNonce + this.serverNonce();
    const serverFirst = `r=${nonce},s=${credentials.salt.toString('base64')},i=${credentials.iterations}`;
    this.state = {
      kind: 'waitFinal',
      user,
      gs2Header,
      clientFirstBare: bare,
      serverFirst,
      nonce,
      credentials,
      identity,
      refusal,
    };
    return { kind: 'challenge', data: Buffer.from(serverFirst, 'utf8') };
  }

  private clientFinal(s: State & { kind: 'waitFinal' }, bytes: Buffer): SaslStep {
    this.state = { kind: 'done' };
    const q = JSON.stringify(s.user);
    const text = decodeUtf8(bytes);
    if (text === undefined) return this.fail('malformed', 'client-final-message is not UTF-8', s.user);
    const pIdx = text.lastIndexOf(',p=');
    if (pIdx < 0) return this.fail('malformed', 'client-final-message has no proof', s.user);
    const withoutProof = text.slice(0, pIdx);
    const proofB64 = text.slice(pIdx + 3);
    const attrs = withoutProof.split(',');
    if (attrs.length < 2 || !attrs[0].startsWith('c=') || !attrs[1].startsWith('r=')) {
      return this.fail('malformed', 'client-final-message is not c=...,r=...', s.user);
    }
    if (!attrs.slice(2).every(isAttrVal))
      return this.fail('malformed', 'client-final-message has text before the proof that is no attribute', s.user);
    // Without channel binding, c= is exactly the base64 of the gs2 header (section 5.1).
    const cbind = Buffer.from(attrs[0].slice(2), 'base64');
    if (!cbind.equals(Buffer.from(s.gs2Header, 'utf8')) || !isBase64(attrs[0].slice(2))) {
      return this.fail('malformed', 'channel binding data does not match the gs2 header', s.user);
    }
    if (attrs[1].slice(2) !== s.nonce) return this.fail('malformed', 'nonce mismatch', s.user);
    const hashLen = this.hash === 'sha1' ? 20 : 32;
    const proof = isBase64(proofB64) ? Buffer.from(proofB64, 'base64') : Buffer.alloc(0);
    if (proof.length !== hashLen) return this.fail('malformed', 'bad proof length', s.user);

    const authMessage = `${s.clientFirstBare},${s.serverFirst},${withoutProof}`;
    const clientSignature = createHmac(this.hash, s.credentials.storedKey).update(authMessage).digest();
    const clientKey = Buffer.alloc(hashLen);
    for (let i = 0; i < hashLen; i++) clientKey[i] = proof[i] ^ clientSignature[i];
    const candidate = createHash(this.hash).update(clientKey).digest();
    const good = timingSafeEqual(candidate, s.credentials.storedKey);
    if (s.identity === undefined) {
      return failure('rejected', `${this.mech}: user ${q}: unknown user`, {
        user: s.user,
        outcome: { kind: 'rejected', reason: 'unknown user', class: 'unknown-user' },
      });
    }
    if (!good) {
      return failure('rejected', `${this.mech}: user ${q}: wrong password`, {
        user: s.user,
        outcome: { kind: 'rejected', reason: 'wrong password', class: 'bad-password' },
      });
    }
    if (s.refusal !== undefined) {
      return failure('rejected', `${this.mech}: user ${q}: ${s.refusal}`, {
        user: s.user,
        outcome: { kind: 'rejected', reason: s.refusal, class: 'policy' },
      });
    }
    const serverSignature = createHmac(this.hash, s.credentials.serverKey).update(authMessage).digest();
    return {
      kind: 'success',
      outcome: { kind: 'ok', identity: s.identity },
      serverFinal: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'),
    };
  }

  /** Stable per user within this process, so probing twice shows the same salt. */
  private fakeCredentials(user: string): ScramCredentials {
    const mac = (label: string): Buffer =>
      createHmac('sha256', FAKE_SECRET).update(`${label}\0${this.algorithm}\0${user}`).digest();
    const len = this.hash === 'sha1' ? 20 : 32;
    return {
      iterations: DEFAULT_SCRAM_ITERATIONS,
      salt: mac('salt').subarray(0, 16),
      storedKey: mac('stored').subarray(0, len),
      serverKey: mac('server').subarray(0, len),
    };
  }
}

function isBase64(s: string): boolean {
  return s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s);
}

/** RFC 5802 section 7: attr-val = ALPHA "=" value. */
function isAttrVal(part: string): boolean {
  return /^[A-Za-z]=/.test(part);
}
