import { PassThrough, Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { relayChildLog } from '../../src/log/relay.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
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
});
