/**
 * The state of one ManageSieve session (RFC 5804 section 2): non-authenticated or
 * authenticated, whether TLS is on, who logged in and their ScriptStore, and the
 * counters that limits act on. Capabilities are derived from this state, never
 * stored beside it.
 *
 * Must not know: sockets, wire encoding, concrete backends.
 */
import type { AttachedBroker, Identity } from '../auth/types.js';
import type { ScriptStore } from '../storage/types.js';
import { buildCapabilities } from './capabilities.js';
import type { ServerServices } from './services.js';

export type SessionState = 'non-authenticated' | 'authenticated';

export interface SessionOrigin {
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** PLAIN/LOGIN/SCRAM may be used without TLS on this connection. */
  readonly plaintextAllowed: boolean;
  /** TLS from the first byte (implicit TLS listener). */
  readonly implicitTls: boolean;
}

export class Session {
  state: SessionState = 'non-authenticated';
  secure: boolean;
  identity: Identity | undefined;
  store: ScriptStore | undefined;
  authFailures = 0;
  badCommands = 0;

  constructor(
    readonly services: ServerServices,
    readonly origin: SessionOrigin,
    /** Mechanism names the auth backend supports, in the server's preference order. */
    private readonly mechanisms: () => readonly string[],
  ) {
    this.secure = origin.implicitTls;
  }

  get user(): string | undefined {
    return this.identity?.user;
  }

  /** The pid of the process that touches this user's files, when it is not the server. */
  get isolatedPid(): number | undefined {
    return this.store?.pid;
  }

  /** RFC 5804 section 5: without TLS, no mechanism is usable unless configured. */
  get authenticationAllowed(): boolean {
    return this.secure || this.origin.plaintextAllowed;
  }

  saslMechanisms(): readonly string[] {
    return this.authenticationAllowed ? this.mechanisms() : [];
  }

  capabilities(): Buffer {
    const { services } = this;
    return buildCapabilities({
      implementation: `tsieved ${services.version}`,
      sieveExtensions: services.checker.extensions,
      saslMechanisms: this.saslMechanisms(),
      offerStartTls: !this.secure && services.tls !== undefined,
      authenticated: this.state === 'authenticated',
      ...(this.identity ? { owner: this.identity.user } : {}),
      maxRedirects: services.config.sieve.max_redirects,
    });
  }

  /** Opens the user's store; the session is authenticated only once that worked. */
  /** Gives back the account's session slot (LoginLimits) at logout. */
  private releaseSlot: (() => void) | undefined;

  async login(identity: Identity, attached?: AttachedBroker, releaseSlot?: () => void): Promise<void> {
    const store = await this.services.stores.open(identity, attached);
    this.releaseSlot = releaseSlot;
    this.identity = identity;
    this.store = store;
    this.state = 'authenticated';
    this.authFailures = 0;
  }

  /** UNAUTHENTICATE, LOGOUT, disconnect: release the store (and its file broker). */
  async logout(): Promise<void> {
    const store = this.store;
    this.store = undefined;
    this.identity = undefined;
    this.state = 'non-authenticated';
    this.releaseSlot?.();
    this.releaseSlot = undefined;
    if (store) await store.close();
  }
}
