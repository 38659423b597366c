/**
 * Hostile and random input over real sockets: hundreds of connections sending
 * mutated commands, random bytes, stray literals and abrupt closes, before and
 * after login. The server must stay up, keep serving a well-behaved client, and
 * log no unexpected error (a bug surfacing as "internal error").
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, startFixture, type Fixture } from '../helpers/fixture.js';

/** A small deterministic PRNG so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEEDS = [
  'CAPABILITY\r\n',
  'NOOP "tag"\r\n',
  'STARTTLS\r\n',
  'AUTHENTICATE "PLAIN" "AGFsaWNlQGV4YW1wbGUub3JnAGNvcnJlY3QgaG9yc2U="\r\n',
  'AUTHENTICATE "LOGIN"\r\n',
  'PUTSCRIPT "a" {5+}\r\nkeep;\r\n',
  'CHECKSCRIPT {13}\r\nif true { } \r\n',
  'HAVESPACE "x" 4294967295\r\n',
  'RENAMESCRIPT "a" "b"\r\n',
  'GETSCRIPT "\\"\\\\"\r\n',
  'LISTSCRIPTS\r\n',
  'SETACTIVE ""\r\n',
  'DELETESCRIPT {1+}\r\na\r\n',
  'UNAUTHENTICATE\r\n',
  '"*"\r\n',
];

function mutate(input: string, random: () => number): Buffer {
  const bytes = [...Buffer.from(input, 'utf8')];
  const edits = 1 + Math.floor(random() * 4);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(random() * (bytes.length + 1));
    switch (Math.floor(random() * 5)) {
      case 0:
        bytes.splice(at, 1);
        break;
      case 1:
        bytes.splice(at, 0, Math.floor(random() * 256));
        break;
      case 2:
        bytes.splice(
          at,
          0,
          ...Buffer.from(['{', String(Math.floor(random() * 40)), random() < 0.5 ? '+' : '', '}\r\n'].join('')),
        );
        break;
      case 3:
        bytes.splice(at, 0, 0x22);
        break;
      default:
        bytes.splice(at, 0, 0x0d, 0x0a);
    }
  }
  return Buffer.from(bytes);
}

/** One connection: optional login, then a burst of garbage, then an abrupt or polite end. */
function hostileSession(port: number, random: () => number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('connect', () => {
      const parts: Buffer[] = [];
      const count = 1 + Math.floor(random() * 8);
      for (let i = 0; i < count; i++) {
        const r = random();
        if (r < 0.6) parts.push(mutate(SEEDS[Math.floor(random() * SEEDS.length)], random));
        else if (r < 0.8) parts.push(Buffer.from(SEEDS[Math.floor(random() * SEEDS.length)]));
        else
          parts.push(Buffer.from(Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256))));
      }
      socket.write(Buffer.concat(parts));
      setTimeout(
        () => {
          if (random() < 0.5) socket.destroy();
          else socket.end('LOGOUT\r\n');
          resolve();
        },
        Math.floor(random() * 30),
      );
    });
    setTimeout(() => {
      socket.destroy();
      resolve();
    }, 3000);
  });
}

describe('fuzzing the live server', () => {
  let fx: Fixture;
  beforeAll(async () => {
    // The plaintext listener lets random input reach the authenticated state too.
    fx = await startFixture({
      listeners: 'listen = [{ address = "127.0.0.1:0", allow_plaintext = true }]',
      extra: { server: 'max_connections_per_ip = 1000\nauth_failure_delay_ms = 0', log: '' },
    });
  });
  afterAll(async () => fx?.stop());

  it('survives 600 hostile sessions and still serves a normal client', async () => {
    const random = rng(Number(process.env.TSIEVED_FUZZ_SEED ?? 20261128));
    for (let batch = 0; batch < 30; batch++) {
      await Promise.all(Array.from({ length: 20 }, () => hostileSession(fx.server.port, random)));
    }
    expect(fx.server.process.exitCode).toBeNull();
    const c = await SieveTestClient.connect(fx.server.port);
    expect((await c.authenticatePlain(ALICE.name, ALICE.password)).statusLine).toBe('OK');
    expect((await c.putScript('after-fuzz', 'keep;\r\n')).statusLine).toBe('OK');
    expect((await c.getScript('after-fuzz')).content?.toString()).toBe('keep;\r\n');
    c.close();
    const errors = fx.server.logLines().filter((l) => typeof l.level === 'number' && l.level >= 50);
    expect(errors).toEqual([]);
  });
});
