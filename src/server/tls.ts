/**
 * Loads the certificate and key into a TLS context. There is no built-in key: TLS
 * that is configured but unreadable stops start-up, and STARTTLS is advertised only
 * when a context exists (RFC 5804 section 1.7: only if TLS really works).
 *
 * Must not know: sessions or the protocol.
 */
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Config } from '../config/schema.js';

export async function loadTlsContext(tls: Config['tls']): Promise<SecureContext | undefined> {
  if (!tls.cert_file && !tls.key_file) return undefined;
  if (!tls.cert_file || !tls.key_file) throw new Error('[tls] needs both cert_file and key_file');
  // Read both, then report every problem (in a fixed order), not whichever came first.
  const [cert, key] = await Promise.allSettled([readFile(tls.cert_file), readFile(tls.key_file)]);
  const problems: string[] = [];
  if (cert.status === 'rejected') problems.push(`[tls] cert_file ${tls.cert_file}: ${(cert.reason as Error).message}`);
  if (key.status === 'rejected') problems.push(`[tls] key_file ${tls.key_file}: ${(key.reason as Error).message}`);
  if (cert.status === 'rejected' || key.status === 'rejected') throw new Error(problems.join('; '));
  try {
    return createSecureContext({ cert: cert.value, key: key.value, minVersion: tls.min_version });
  } catch (error) {
    throw new Error(`[tls] cannot use ${tls.cert_file} / ${tls.key_file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
