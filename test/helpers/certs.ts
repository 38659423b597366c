/**
 * The test CA and the server certificate for localhost/127.0.0.1 (key unencrypted),
 * committed under test/fixtures/tls/ (made once by its make.sh with the real openssl,
 * valid until 2126), so that TLS tests need no openssl program.
 *
 * Must not know: how tests use them.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface TestCerts {
  readonly dir: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly ca: Buffer;
}

const dir = fileURLToPath(new URL('../fixtures/tls/', import.meta.url));

export function testCerts(): TestCerts {
  return {
    dir,
    caFile: `${dir}ca.pem`,
    certFile: `${dir}server.pem`,
    keyFile: `${dir}server.key`,
    ca: readFileSync(`${dir}ca.pem`),
  };
}
