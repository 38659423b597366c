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
  const [cert, key] = await Promise.all([
    readFile(tls.cert_file).catch((e: Error) => {
      throw new Error(`[tls] cert_file ${tls.cert_file}: ${e.message}`);
    }),
    readFile(tls.key_file).catch((e: Error) => {
      throw new Error(`[tls] key_file ${tls.key_file}: ${e.message}`);
    }),
  ]);
  try {
    return createSecureContext({ cert, key, minVersion: tls.min_version });
  } catch (error) {
    throw new Error(`[tls] cannot use ${tls.cert_file} / ${tls.key_file}: ${(error as Error).message}`);
  }
}
