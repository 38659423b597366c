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
import type { SessionSlot } from './login-limits.js';
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

  /** Gives back the account's session slot (LoginLimits) at logout. */
  private releaseSlot: (() => void) | undefined;

  /**
   * Opens the user's store while the account's session slot is being given (with
   * several workers the slot is a round trip to the primary, the store a few calls
   * to the file broker: waiting for one after the other would add them up). The
   * session is authenticated only when both were: false when the slot was refused
   * (a store opened meanwhile is closed again, which ends its broker); a store that
   * could not be opened gives the slot back and throws.
   */
  async login(identity: Identity, attached: AttachedBroker | undefined, slot: Promise<SessionSlot>): Promise<boolean> {
    const opening = this.services.stores.open(identity, attached);
    let release: SessionSlot;
    try {
      release = await slot;
    } catch (err) {
      await opening.then(
        (store) => store.close(),
        () => undefined,
      );
      throw err;
    }
    if (!release) {
      await opening.then(
        (store) => store.close(),
        () => undefined,
      );
      return false;
    }
    let store: ScriptStore;
    try {
      store = await opening;
    } catch (err) {
      release();
      throw err;
    }
    this.releaseSlot = release;
    this.identity = identity;
    this.store = store;
    this.state = 'authenticated';
    this.authFailures = 0;
    return true;
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
