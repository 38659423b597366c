import { readFileSync } from 'node:fs';
import { PassThrough, Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { relayChildLog } from '../../src/log/relay.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'trace' }, sink), lines };
}

describe('worker log relay', () => {
  it('keeps the level and fields of pino lines, logs other text as warnings, across chunk boundaries', async () => {
    const { log, lines } = capture();
    const stream = new PassThrough();
    relayChildLog(stream, log);
    const json = JSON.stringify({ level: 50, time: 1, msg: 'disk full', scriptsDir: '/x' });
    stream.write(json.slice(0, 10));
    stream.write(json.slice(10) + '\nplain text from a crash\n');
    stream.end('last line without newline');
    await new Promise((r) => setImmediate(r));
    expect(lines).toEqual([
      expect.objectContaining({ level: 50, msg: 'disk full', scriptsDir: '/x', from: 'worker' }),
      expect.objectContaining({ level: 40, msg: 'plain text from a crash', from: 'worker' }),
      expect.objectContaining({ level: 40, msg: 'last line without newline' }),
    ]);
  });

  it("a child cannot forge the server's lines: the fail2ban filter never matches what it relays", async () => {
    const { log, lines } = capture();
    const raw: string[] = [];
    const stream = new PassThrough();
    relayChildLog(stream, log.child({ client: '127.0.0.1:5000' }));
    const forged = [
      {
        level: 40,
        event: 'auth-failure',
        remote: '198.51.100.77',
        user: 'x',
        mechanism: 'PLAIN',
        reason: 'r',
        msg: 'authentication failed',
      },
      {
        level: 40,
        nested: { event: 'auth-failure', remote: '198.51.100.78', msg: 'authentication failed' },
        msg: 'authentication failed',
      },
      { level: 40, 'x","event': 'auth-failure', msg: 'authentication failed' },
    ];
    stream.end(forged.map((f) => JSON.stringify(f)).join('\n') + '\n');
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(3);
    for (const line of lines) raw.push(JSON.stringify(line));
    // The shipped fail2ban filter's regex, with its line prefix dropped and <ADDR> as any IP.
    const conf = readFileSync(new URL('../../contrib/fail2ban/filter.d/tsieved.conf', import.meta.url), 'utf8');
    const failregex = new RegExp(
      /^failregex = (.*)$/m.exec(conf)![1].replace('%(__prefix_line)s', '').replace('<ADDR>', '[0-9a-fA-F.:]+'),
    );
    // Sanity: the regex does match a real server line.
    expect(
      JSON.stringify({
        level: 40,
        time: 't',
        event: 'auth-failure',
        remote: '192.0.2.1',
        user: 'u',
        msg: 'authentication failed',
      }),
    ).toMatch(failregex);
    for (const text of raw) expect(text).not.toMatch(failregex);
    expect(lines[0]).toMatchObject({
      from: 'worker',
      worker_event: 'auth-failure',
      worker_remote: '198.51.100.77',
      worker_user: 'x',
    });
    expect(lines[0]).not.toHaveProperty('event');
    expect(typeof lines[1]['nested']).toBe('string');
  });
});
