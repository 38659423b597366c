/**
 * The shapes shared by the login step (auth/) and storage (storage/): who a user
 * turned out to be, and the per-session process a login may have started. Both
 * sides import them from here, so neither needs the other.
 *
 * Must not know: how an identity was verified, or where its files live.
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
  /** The broker's pid; -1 until `started` has resolved. */
  readonly pid: number;
  /** Byte streams to the broker (its stdin/stdout). */
  readonly input: NodeJS.WritableStream;
  readonly output: NodeJS.ReadableStream;
  /**
   * Resolves once `output` carries the broker's answers alone (what came before was
   * its starter's: the PAM helper reports the broker's pid there). Requests may be
   * written before. Rejects when the broker did not start.
   */
  readonly started?: Promise<void>;
  /** Ends the broker and, for PAM, lets the helper close the PAM session. */
  terminate(): void;
  /** Resolves when the broker (for PAM: the helper) has exited. */
  readonly exited: Promise<void>;
}
