/**
 * SASL PLAIN (RFC 4616): one message `[authzid] NUL authcid NUL passwd`, UTF-8.
 * Without an initial response the server sends an empty challenge (RFC 4616
 * section 2; RFC 5804 section 2.1). An empty initial response ("=") is a response,
 * and an empty message is malformed. Proxy login (authzid other than empty or the
 * authcid) is refused.
 *
 * The password is passed on byte for byte, without SASLprep: every store we check
 * against (crypt hashes from passwd/chpasswd, userdbpw, doveadm, PAM, an LDAP bind)
 * holds what the user typed, unprepared, and NFKC would change some passwords into
 * others (a full-width or compatibility character), locking their owners out.
 * SCRAM, whose keys are defined over the prepared password, does prepare it.
 *
 * Must not know: base64, sockets, how passwords are checked.
 */
import type { AuthBackend, AuthContext } from '../auth/types.js';
import { decodeUtf8 } from '../auth/identity-rules.js';
import { passwordLogin } from './password-login.js';
import { failure, type SaslExchange, type SaslStep } from './types.js';

export class PlainExchange implements SaslExchange {
  private state: 'new' | 'waiting' | 'done' = 'new';

  constructor(
    private readonly backend: AuthBackend,
    private readonly context: AuthContext,
  ) {}

  async start(initialResponse: Buffer | undefined): Promise<SaslStep> {
    if (this.state !== 'new') return this.finish(failure('malformed', 'PLAIN: exchange already started'));
    if (initialResponse === undefined) {
      this.state = 'waiting';
      return { kind: 'challenge', data: Buffer.alloc(0) };
    }
    return this.finish(await this.message(initialResponse));
  }

  async respond(response: Buffer): Promise<SaslStep> {
    if (this.state !== 'waiting') return this.finish(failure('malformed', 'PLAIN: unexpected response'));
    return this.finish(await this.message(response));
  }

  private finish(step: SaslStep): SaslStep {
    this.state = 'done';
    return step;
  }

  private async message(msg: Buffer): Promise<SaslStep> {
    const first = msg.indexOf(0);
    const second = first < 0 ? -1 : msg.indexOf(0, first + 1);
    if (first < 0 || second < 0 || msg.indexOf(0, second + 1) >= 0) {
      return failure('malformed', 'PLAIN: message is not authzid NUL authcid NUL passwd');
    }
    const authzid = decodeUtf8(msg.subarray(0, first));
    const authcid = decodeUtf8(msg.subarray(first + 1, second));
    const password = decodeUtf8(msg.subarray(second + 1));
    if (authzid === undefined || authcid === undefined || password === undefined) {
      return failure('malformed', 'PLAIN: message is not valid UTF-8');
    }
    if (authzid !== '' && authzid !== authcid) {
      return failure(
        'authzid',
        `PLAIN: user ${JSON.stringify(authcid)} asked to act as ${JSON.stringify(authzid)}: proxy login not supported`,
        {
          user: authcid,
        },
      );
    }
    return passwordLogin('PLAIN', this.backend, this.context, authcid, password);
  }
}
