/**
 * A client that pipelines thousands of GETSCRIPTs of a large script and never reads
 * a reply, over a real TLS socket against the real server. The server must stop
 * reading that connection once its replies are not drained (what it has read stays
 * within its 64 KiB input allowance of what it has answered, and at most one reply
 * waits in its output queue, both as `tsieved who --json` shows them from the
 * server's own counters), its memory must not grow with the replies the client did
 * not take, other sessions must be answered meanwhile, and when the client finally
 * reads it gets every reply, complete and in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SieveTestClient } from '../helpers/client.js';
import { ALICE, BOB, startFixture, type Fixture } from '../helpers/fixture.js';
import { controlRequest } from '../../src/control/socket.js';

/** The script every GETSCRIPT returns: 64 KiB of comments around a valid rule. */
const SCRIPT = Buffer.from('# big\r\n' + `# ${'x'.repeat(60)}\r\n`.repeat(1024) + 'keep;\r\n');
/** GETSCRIPT + NOOP pairs sent in one go; each NOOP's tag numbers its place. */
const PAIRS = 2000;
const PAD = 'p'.repeat(960);
const tagOf = (i: number): string => `seq-${String(i).padStart(5, '0')}-${PAD}`;
const pairInput = (i: number): string => `GETSCRIPT "big"\r\nNOOP "${tagOf(i)}"\r\n`;
/** What one pair's replies take on the wire at least (literal, OK lines, the tag echoed). */
const PAIR_OUTPUT = SCRIPT.length + tagOf(0).length;
/**
 * How far the server may read ahead of what it answered: its 64 KiB allowance of
 * unread input behind the running command (connection.ts), plus what the socket
 * and TLS layers take in one read each before the pause reaches them.
 */
const READ_AHEAD_BOUND = 256 * 1024;

interface Who {
  remote: string;
  bytesIn: number;
  bytesOut: number;
  outputQueued: number;
}

function rssMiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error('no VmRSS');
  return Number(m[1]) / 1024;
}

describe('backpressure: a client that never reads its replies', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await startFixture();
  });
  afterAll(async () => fx?.stop());

  const login = async (user = ALICE): Promise<SieveTestClient> => {
    const c = await SieveTestClient.connect(fx.server.port);
    await c.startTls(fx.ca);
    expect((await c.authenticatePlain(user.name, user.password)).status).toBe('OK');
    return c;
  };
  const who = async (remote: string): Promise<Who> => {
    const answer = await controlRequest(join(fx.dir, 'control.sock'), { cmd: 'who' });
    if (!answer.ok) throw new Error(answer.error);
    const found = (answer.sessions ?? []).find((s) => s.remote === remote);
    if (!found) throw new Error(`no session ${remote}`);
    return found as unknown as Who;
  };

  it('stops reading, keeps memory and the output queue bounded, serves others, then delivers every reply in order', async () => {
    const owner = await login();
    expect((await owner.putScript('big', SCRIPT)).status).toBe('OK');
    const pid = fx.server.process.pid!;
    const rssBefore = rssMiB(pid);

    const flooder = await login();
    const remote = flooder.clientField;
    const loggedIn = await who(remote);
    flooder.stopReading();
    const payload = Buffer.from(Array.from({ length: PAIRS }, (_, i) => pairInput(i)).join(''));
    flooder.write(payload);

    // Wait until the server has stopped taking input from this connection.
    let stalled = await who(remote);
    for (let still = 0; still < 4;) {
      await new Promise((r) => setTimeout(r, 250));
      const now = await who(remote);
      still = now.bytesIn === stalled.bytesIn && now.bytesOut === stalled.bytesOut ? still + 1 : 0;
      stalled = now;
    }
    /** What the server read beyond the input of the commands it answered (their replies are in bytesOut). */
    const readAhead = (w: Who): number =>
      w.bytesIn - loggedIn.bytesIn - Math.ceil((w.bytesOut - loggedIn.bytesOut) / PAIR_OUTPUT) * pairInput(0).length;
    // The server read only what it answered plus its fixed allowance, not the 2 MB sent.
    expect(stalled.bytesIn - loggedIn.bytesIn).toBeLessThan(payload.length / 4);
    expect(readAhead(stalled)).toBeLessThan(READ_AHEAD_BOUND);
    expect((stalled.bytesOut - loggedIn.bytesOut) / PAIR_OUTPUT).toBeLessThan(PAIRS / 4);
    // At most the reply being written waits in the server's own buffer; the rest is unproduced.
    expect(stalled.outputQueued).toBeLessThanOrEqual(SCRIPT.length + 1024);
    // The 2000 replies not taken (130 MiB) are nowhere in the server's memory (the
    // growth measured is ~20 MiB, garbage of the replies written; without backpressure ~190).
    expect(rssMiB(pid) - rssBefore).toBeLessThan(64);

    // Another session of the same user, and another user, are answered meanwhile.
    const other = await login();
    const bob = await login(BOB);
    const slowest: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      expect((await (i % 2 ? bob : other).command(`NOOP "n${i}"`)).code).toBe(`TAG "n${i}"`);
      slowest.push(performance.now() - started);
    }
    // Generous (2 shared cores): a server held by the flooder would not answer at all.
    expect(Math.max(...slowest)).toBeLessThan(1000);
    expect((await other.getScript('big')).content).toEqual(SCRIPT);
    // Still held: serving others did not make the server read the flooder's input.
    const later = await who(remote);
    expect(later.bytesIn - loggedIn.bytesIn).toBeLessThan(payload.length / 4);
    expect(readAhead(later)).toBeLessThan(READ_AHEAD_BOUND);

    // The client reads at last: every reply arrives, whole and in order.
    flooder.resumeReading();
    const expectedLiteral = Buffer.concat([Buffer.from(`{${SCRIPT.length}}\r\n`), SCRIPT]);
    for (let i = 0; i < PAIRS; i++) {
      const get = await flooder.readResponse();
      expect(get.status).toBe('OK');
      if (!get.rawLines[0]?.equals(expectedLiteral)) throw new Error(`GETSCRIPT reply ${i} is not the script`);
      const noop = await flooder.readResponse();
      if (noop.code !== `TAG "${tagOf(i)}"`) throw new Error(`reply ${i} out of order: ${noop.statusLine}`);
    }
    expect((await flooder.command('LOGOUT')).status).toBe('OK');
    const all = await who(other.clientField);
    expect(all.outputQueued).toBe(0);
    for (const c of [owner, other, bob]) c.close();
  }, 120_000);
});
