/**
 * The contract between the login step and everything that follows it.
 *
 * An auth backend turns a (user, password) pair, or a SCRAM lookup, into an
 * outcome. It knows nothing of sockets, of the wire protocol or of storage: the
 * session layer decides what the client is told, and the storage launcher decides
 * how the verified identity gets its ScriptStore.
 */
import type { AttachedBroker, Identity } from '../identity.js';

export type { AttachedBroker, Identity };

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

/**
 * The parameters SCRAM's server side (sasl/) and the backends that store SCRAM
 * keys (auth/) must agree on; kept with the other shared shapes so that sasl/
 * needs no auth implementation module.
 */
export const DEFAULT_SCRAM_ITERATIONS = 4096;

/** node:crypto's name of each algorithm's hash (RFC 5802, RFC 7677). */
export function scramHashName(algorithm: ScramAlgorithm): 'sha1' | 'sha256' {
  return algorithm === 'SHA-1' ? 'sha1' : 'sha256';
}

/** Stored SCRAM keys (RFC 5802 section 3), as a backend can supply them. */
export interface ScramCredentials {
  readonly iterations: number;
  readonly salt: Buffer;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

export type ScramLookup =
  /** `refusal`: the keys are real, but this login may not go ahead (said after the proof). */
  | {
      readonly kind: 'found';
      readonly credentials: ScramCredentials;
      readonly identity: Identity;
      readonly refusal?: string;
    }
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
