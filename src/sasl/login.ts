/**
 * SASL LOGIN (draft-murchison-sasl-login-00; not standardised, but old clients
 * and Net_Sieve/sieve-connect when forced use it): challenge "Username:", then
 * "Password:". A non-empty initial response is taken as the user name (as
 * Dovecot does); an empty one is an empty user name, which is malformed.
 *
 * Must not know: base64, sockets, how passwords are checked.
 */
import type { AuthBackend, AuthContext } from '../auth/types.js';
import { decodeUtf8 } from '../auth/identity-rules.js';
import { passwordLogin } from './password-login.js';
import { failure, type SaslExchange, type SaslStep } from './types.js';

const USERNAME = Buffer.from('Username:', 'ascii');
const PASSWORD = Buffer.from('Password:', 'ascii');

export class LoginExchange implements SaslExchange {
  private state: 'new' | 'user' | 'password' | 'done' = 'new';
  private user = '';

  constructor(
    private readonly backend: AuthBackend,
    private readonly context: AuthContext,
  ) {}

  async start(initialResponse: Buffer | undefined): Promise<SaslStep> {
    if (this.state !== 'new') return this.fail(failure('malformed', 'LOGIN: exchange already started'));
    if (initialResponse === undefined) {
      this.state = 'user';
      return { kind: 'challenge', data: USERNAME };
    }
    return this.takeUser(initialResponse);
  }

  async respond(response: Buffer): Promise<SaslStep> {
    switch (this.state) {
      case 'user':
        return this.takeUser(response);
      case 'password': {
        this.state = 'done';
        const password = decodeUtf8(response);
        if (password === undefined)
          return failure('malformed', 'LOGIN: password is not valid UTF-8', { user: this.user });
        return passwordLogin('LOGIN', this.backend, this.context, this.user, password);
      }
      default:
        return this.fail(failure('malformed', 'LOGIN: unexpected response'));
    }
  }

  private takeUser(bytes: Buffer): SaslStep {
    const user = decodeUtf8(bytes);
    if (user === undefined) return this.fail(failure('malformed', 'LOGIN: user name is not valid UTF-8'));
    if (user === '') return this.fail(failure('malformed', 'LOGIN: empty user name'));
    this.user = user;
    this.state = 'password';
    return { kind: 'challenge', data: PASSWORD };
  }

  private fail(step: SaslStep): SaslStep {
    this.state = 'done';
    return step;
  }
}
