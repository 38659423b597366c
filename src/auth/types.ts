/**
 * The contract between the login step and everything that follows it.
 *
 * An auth backend turns a (user, password) pair, or a SCRAM lookup, into an
 * outcome. It knows nothing of sockets, of the wire protocol or of storage: the
 * session layer decides what the client is told, and the storage launcher decides
 * how the verified identity gets its ScriptStore.
 */

/** Who a user turned out to be, as every backend reports it. */
export interface Identity {
  /** The canonical login name the backend settled on (PAM may map it). */
  readonly user: string;
  readonly uid?: number;
  readonly gid?: number;
  readonly home?: string;
  readonly mail?: string;
  /** Any further fields the backend holds (userdb fields, LDAP attributes). */
  readonly fields: Readonly<Record<string, string>>;
}

/**
 * A process that was started as part of the login itself (the PAM helper's child,
 * the file broker, which holds the user's credentials). The storage launcher adopts
 * it instead of starting a broker of its own. Opaque to everything but the launcher.
 */
export interface AttachedBroker {
  readonly pid: number;
  /** Byte streams to the broker (its stdin/stdout). */
  readonly input: NodeJS.WritableStream;
  readonly output: NodeJS.ReadableStream;
  /** Ends the broker and, for PAM, lets the helper close the PAM session. */
  terminate(): void;
  /** Resolves when the broker (for PAM: the helper) has exited. */
  readonly exited: Promise<void>;
}

/**
 * What a login attempt came to. `rejected` covers both unknown user and wrong
 * password (the client must not be able to tell them apart); `reason` is for the
 * log only. `unavailable` means the backend could not answer (directory down,
 * file unreadable, helper missing): the client is told to try later.
 */
export type AuthOutcome =
  | { readonly kind: 'ok'; readonly identity: Identity; readonly attached?: AttachedBroker }
  | { readonly kind: 'rejected'; readonly reason: string; readonly class?: RejectionClass }
  | { readonly kind: 'unavailable'; readonly reason: string };

/**
 * Why a login was refused, for the operator's log and metrics only (the client is
 * told the same for all): a wrong password for a known user, a name no backend
 * knows, a login that is malformed (bad name or password shape), or a valid
 * password that policy refuses (locked account, network restriction, expired).
 * Absent = the backend cannot tell (PAM reports unknown users as wrong passwords).
 */
export type RejectionClass = 'bad-password' | 'unknown-user' | 'malformed' | 'policy';

/** Where a login comes from, for PAM_RHOST, logs and rate limits. */
export interface AuthContext {
  readonly remoteAddress: string;
  readonly secure: boolean;
}

export type ScramAlgorithm = 'SHA-1' | 'SHA-256';

/** Stored SCRAM keys (RFC 5802 section 3), as a backend can supply them. */
export interface ScramCredentials {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export type ScramLookup =
  /** `refusal`: the keys are real, but this login may not go ahead (said after the proof). */
  | { readonly kind: 'found'; readonly credentials: ScramCredentials; readonly identity: Identity; readonly refusal?: string }
  /** `decoy`: made-up parameters to answer with, as stable as a real user's (else the mechanism makes some up). */
  | { readonly kind: 'unknown'; readonly decoy?: ScramCredentials }
  | { readonly kind: 'unavailable'; readonly reason: string };

export interface AuthBackend {
  /** Short name for logs: "userdb", "passwd-file", "pam", "ldap". */
  readonly name: string;
  verifyPassword(user: string, password: string, context: AuthContext): Promise<AuthOutcome>;
  /**
   * Present only on backends that can hold SCRAM keys. Which mechanisms are
   * offered is decided by `scramAlgorithms`.
   */
  readonly scramAlgorithms?: readonly ScramAlgorithm[];
  lookupScram?(user: string, algorithm: ScramAlgorithm, context: AuthContext): Promise<ScramLookup>;
  /** Re-read files or reconnect (SIGHUP). */
  reload?(): Promise<void>;
  /** Backends that read every account up front list them, for the start-up checks. */
  identities?(): Promise<readonly Identity[]>;
  close?(): Promise<void>;
}
