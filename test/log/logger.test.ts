/**
 * The root logger's queue is bounded: with a log consumer that stops reading, lines
 * beyond the limit are dropped, counted, and reported in one line once it drains.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, createReadStream, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRootLogger, TurnLines } from '../../src/log/logger.js';
import { LineBudget } from '../../src/log/line-budget.js';
import { needs, tool } from '../helpers/tools.js';

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('root logger under a stalled log consumer', () => {
  it(
    'keeps at most the queue limit in memory, drops the rest and says how many in one line',
    needs('mkfifo'),
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'tsieved-log-'));
      const fifo = join(dir, 'log');
      execFileSync(tool('mkfifo'), [fifo]);
      // Read-write open of a FIFO does not wait for a reader (Linux); nobody reads yet,
      // so after the pipe's 64 KiB the destination's writes stall.
      const fd = openSync(fifo, 'r+');
      // Fill the pipe first, so that nothing the logger queues can leave its queue
      // until the consumer reads.
      const prefill = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
      try {
        for (;;) writeSync(prefill, Buffer.alloc(4096, 0x0a));
      } catch {
        /* EAGAIN: the pipe is full */
      }
      closeSync(prefill);
      const log = createRootLogger('info', undefined, { fd, maxQueuedBytes: 256 * 1024 });
      const heapBefore = process.memoryUsage().heapUsed;
      const line = 'x'.repeat(200);
      for (let i = 0; i < 50_000; i++) log.info({ event: 'command', i }, line); // ~12 MB of lines
      const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
      // Short lines until they no longer fit: too little room is left for the report.
      for (let i = 0; i < 20; i++) log.info('x');
      // Unbounded, the 12 MB of lines would sit in the heap; bounded, the queue is 256 KiB.
      expect(heapGrowth).toBeLessThan(8 * 1024 * 1024);

      // The consumer stays stalled past the first report, which is then dropped too:
      // its count must not be lost with it.
      await new Promise((r) => setTimeout(r, 1500));
      // Now the consumer reads again: the report arrives (about a second later).
      let text = '';
      const reader = createReadStream(fifo);
      reader.on('data', (d) => (text += d.toString()));
      const deadline = Date.now() + 10_000;
      while (!text.includes('"event":"log-dropped"') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      reader.destroy();
      closeSync(fd);
      const report = text.split('\n').find((l) => l.includes('"event":"log-dropped"'));
      expect(report).toBeDefined();
      const entry = JSON.parse(report!) as { level: number; count: number; msg: string };
      expect(entry.level).toBe(40);
      const written = text.split('\n').filter((l) => l.includes('"event":"command"')).length;
      // Every line is accounted for: written or counted as dropped (the report may
      // come before the last of the queue is written, so at least).
      expect(entry.count + written).toBeGreaterThanOrEqual(50_000);
      expect(entry.count).toBeGreaterThan(40_000);
      expect(entry.msg).toMatch(/^\d+ log lines dropped/);
    },
  );
});

describe('LineBudget (per-connection command lines)', () => {
  it('allows a burst, then the rate, and hands out the suppressed count once a report is due', () => {
    let now = 0;
    const budget = new LineBudget(10, 5, 1000, () => now);
    const allowed = Array.from({ length: 20 }, () => budget.take()).filter(Boolean).length;
    expect(allowed).toBe(5);
    expect(budget.due()).toBe(0); // not yet a second since the first suppressed line
    now = 500; // 5 more tokens
    expect(Array.from({ length: 20 }, () => budget.take()).filter(Boolean).length).toBe(5);
    now = 1000;
    expect(budget.due()).toBe(30);
    expect(budget.due()).toBe(0);
    expect(budget.take()).toBe(true);
    now = 1000;
    for (let i = 0; i < 10; i++) budget.take();
    expect(budget.due(true)).toBeGreaterThan(0);
  });
});

describe('TurnLines (the lines of one turn, one write)', () => {
  const destination = () => {
    const writes: string[] = [];
    let flushes = 0;
    return {
      writes,
      flushes: () => flushes,
      queue: {
        write: (text: string) => writes.push(text) > 0,
        flush: (cb?: (err?: Error) => void) => {
          flushes++;
          cb?.();
        },
        flushSync: () => undefined,
      },
    };
  };
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

  it('hands the lines of a turn on in one write, in order, and the next turn in another', async () => {
    const d = destination();
    const lines = new TurnLines(d.queue);
    lines.write('a\n');
    lines.write('b\n');
    lines.write('c\n');
    expect(d.writes).toEqual([]);
    await turn();
    expect(d.writes).toEqual(['a\nb\nc\n']);
    lines.write('d\n');
    await turn();
    expect(d.writes).toEqual(['a\nb\nc\n', 'd\n']);
  });

  it('never holds more than 16 KiB: a long turn is handed on as it goes', () => {
    const d = destination();
    const lines = new TurnLines(d.queue);
    const line = 'x'.repeat(1023) + '\n';
    for (let i = 0; i < 40; i++) lines.write(line);
    expect(d.writes.length).toBe(2);
    expect(d.writes.every((w) => w.length === 16 * 1024)).toBe(true);
  });

  it("flush(callback) hands on what waits and flushes the destination (pino's logger.flush)", async () => {
    const d = destination();
    const lines = new TurnLines(d.queue);
    lines.write('a\n');
    await new Promise<void>((resolve) => lines.flush(() => resolve()));
    expect(d.writes).toEqual(['a\n']);
    expect(d.flushes()).toBe(1);
  });

  it('a process that exits right after logging still writes every line', () => {
    // The lines wait for the end of the turn, which an exit never reaches.
    const logger = join(process.cwd(), 'dist/log/logger.js');
    const out = execFileSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const { createRootLogger } = await import(${JSON.stringify(logger)});
         const log = createRootLogger('info', undefined, { fd: 1 });
         for (let i = 0; i < 3; i++) log.info({ event: 'command', i }, 'line');
         process.exit(0);`,
      ],
      { encoding: 'utf8' },
    );
    const events = out
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { i: number }).i);
    expect(events).toEqual([0, 1, 2]);
  });
});
