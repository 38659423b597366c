/**
 * The one builder of the capability list (RFC 5804 section 1.7). Sent at connect,
 * pushed after STARTTLS, and returned by CAPABILITY; what it lists changes only
 * with TLS and login state, as section 1.7 requires.
 *
 * Must not know: sockets or how the values were found.
 */
import { encodeCapabilityLine } from '../protocol/response.js';

export interface CapabilityInputs {
  readonly implementation: string;
  readonly sieveExtensions: readonly string[];
  /** Mechanisms usable right now (empty before TLS unless plaintext is allowed). */
  readonly saslMechanisms: readonly string[];
  /** STARTTLS is offered only while the connection is clear and TLS really works. */
  readonly offerStartTls: boolean;
  readonly authenticated: boolean;
  readonly owner?: string;
  readonly maxRedirects?: number;
}

export function buildCapabilities(c: CapabilityInputs): Buffer {
  const lines: Buffer[] = [];
  // Values never carry `"` or `\` (KManageSieve and Net_Sieve split on raw quotes).
  const clean = (s: string): string => s.replace(/["\\\r\n]/g, '');
  lines.push(encodeCapabilityLine('IMPLEMENTATION', clean(c.implementation)));
  lines.push(encodeCapabilityLine('SIEVE', clean(c.sieveExtensions.join(' '))));
  // RFC 5804 section 1.7: NOTIFY is mandatory when enotify is offered.
  if (c.sieveExtensions.includes('enotify')) lines.push(encodeCapabilityLine('NOTIFY', 'mailto'));
  if (!c.authenticated) {
    // SASL is empty exactly when STARTTLS is offered and nothing is usable in clear
    // text (sieve-connect dies on an empty SASL without STARTTLS).
    lines.push(encodeCapabilityLine('SASL', c.saslMechanisms.join(' ')));
  }
  if (c.offerStartTls && !c.authenticated) lines.push(encodeCapabilityLine('STARTTLS'));
  if (c.authenticated && c.maxRedirects !== undefined) {
    lines.push(encodeCapabilityLine('MAXREDIRECTS', String(c.maxRedirects)));
  }
  // RFC 5804 section 1.7: OWNER MUST NOT be sent before login, SHOULD after.
  if (c.authenticated && c.owner !== undefined) lines.push(encodeCapabilityLine('OWNER', clean(c.owner)));
  lines.push(encodeCapabilityLine('UNAUTHENTICATE'));
  lines.push(encodeCapabilityLine('VERSION', '1.0'));
  return Buffer.concat(lines);
}
