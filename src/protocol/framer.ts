/**
 * Cuts the client's byte stream into commands: CRLF-terminated lines with embedded
 * literals (`{n}` and `{n+}`, RFC 5804 section 4). It reads one command at a time,
 * only when asked, so that the limits in force (a small literal before login, the
 * script limit after) are those of the moment the command is executed, not of the
 * moment its bytes arrived. A complete command, literals included, is always read
 * before it is judged (a refused command's literal must never be read as commands).
 *
 * Must not know: command names, sessions, sockets, storage.
 */
import { ProtocolError } from './errors.js';
import { literalAnnouncement, tokenizeSegment, type Token } from './tokens.js';

/** What the framer asks before it reads a literal of `size` octets. */
export type LiteralVerdict =
  /** Read it into memory. */
  | { readonly action: 'accept' }
  /** Read past it without keeping it, then fail just this command (e.g. QUOTA/MAXSIZE). */
  | { readonly action: 'discard'; readonly error: ProtocolError }
  /** Too large to even read past: end the connection. */
  | { readonly action: 'refuse'; readonly error: ProtocolError };

export interface FramerLimits {
  /** Longest text part of a command line, CRLF excluded. */
  readonly maxLineBytes: number;
  /** Decides each literal; `sizeSoFar` counts the command's earlier literals. */
  literalVerdict(size: number, sizeSoFar: number): LiteralVerdict;
}

export type FrameResult =
  | { readonly kind: 'command'; readonly tokens: Token[]; readonly error?: ProtocolError }
  | { readonly kind: 'fatal'; readonly error: ProtocolError }
  | { readonly kind: 'need-more' };

const LF = 0x0a;
const CR = 0x0d;

/**
 * Incremental, synchronous parser of one command at a time. Feed bytes with
 * `push`, then call `parse` until it says `need-more`. It keeps only the bytes of
 * the command being read plus what has arrived after it.
 */
export class CommandFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  // State of the command being read.
  private tokens: Token[] = [];
  private error: ProtocolError | undefined;
  private literalRemaining = 0;
  private literalKeep = false;
  private literalParts: Buffer[] = [];
  private literalBytesSoFar = 0;
  private lineBytesSoFar = 0;

  constructor(private limits: FramerLimits) {}

  setLimits(limits: FramerLimits): void {
    this.limits = limits;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** Octets received but not yet consumed by a complete command. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Drops everything received so far (STARTTLS: clear-text bytes behind the command are an injection). */
  discardBuffered(): void {
    this.chunks = [];
    this.buffered = 0;
    this.resetCommand();
  }

  /** True when a command has been partly read (an EOF now is an EOF mid-command). */
  get inCommand(): boolean {
    return this.tokens.length > 0 || this.literalRemaining > 0 || this.lineBytesSoFar > 0 || this.error !== undefined;
  }

  parse(): FrameResult {
    for (;;) {
      if (this.literalRemaining > 0) {
        if (!this.readLiteral()) return { kind: 'need-more' };
        continue;
      }
      const line = this.takeLine();
      if (line === 'need-more') return { kind: 'need-more' };
      if (line instanceof ProtocolError) return { kind: 'fatal', error: line };
      const announced = literalAnnouncement(line);
      const { tokens, literalLength, error } = tokenizeSegment(line);
      this.tokens.push(...tokens);
      if (error && !this.error) this.error = error;
      const size = literalLength ?? announced;
      if (size !== undefined) {
        const verdict = this.limits.literalVerdict(size, this.literalBytesSoFar);
        if (verdict.action === 'refuse') return { kind: 'fatal', error: verdict.error };
        if (verdict.action === 'discard' && !this.error) this.error = verdict.error;
        this.literalRemaining = size;
        this.literalKeep = verdict.action === 'accept' && !this.error;
        this.literalBytesSoFar += size;
        if (size === 0) this.finishLiteral();
        continue;
      }
      const result: FrameResult = this.error
        ? { kind: 'command', tokens: this.tokens, error: this.error }
        : { kind: 'command', tokens: this.tokens };
      this.resetCommand();
      return result;
    }
  }

  private resetCommand(): void {
    this.tokens = [];
    this.error = undefined;
    this.literalRemaining = 0;
    this.literalKeep = false;
    this.literalParts = [];
    this.literalBytesSoFar = 0;
    this.lineBytesSoFar = 0;
  }

  /** Consumes literal octets; true when the literal is complete. */
  private readLiteral(): boolean {
    while (this.literalRemaining > 0 && this.chunks.length > 0) {
      const head = this.chunks[0];
      const take = Math.min(head.length, this.literalRemaining);
      if (this.literalKeep) this.literalParts.push(head.subarray(0, take));
      this.literalRemaining -= take;
      this.consumeFromHead(take);
    }
    if (this.literalRemaining > 0) return false;
    this.finishLiteral();
    return true;
  }

  private finishLiteral(): void {
    if (this.literalKeep) {
      this.tokens.push({ type: 'string', value: Buffer.concat(this.literalParts), literal: true });
    }
    this.literalParts = [];
    this.literalKeep = false;
  }

  private consumeFromHead(count: number): void {
    const head = this.chunks[0];
    if (count >= head.length) this.chunks.shift();
    else this.chunks[0] = head.subarray(count);
    this.buffered -= count;
  }

  /**
   * Takes the next LF-terminated segment (CR before LF dropped; a bare LF is
   * accepted as clients and Dovecot do). Enforces the line limit across the
   * command's segments so that a line cannot grow without bound. The limit counts
   * the text without its line end, so a bare LF is allowed no octet more than
   * CRLF (it once was, by counting the CR slot as text).
   */
  private takeLine(): Buffer | 'need-more' | ProtocolError {
    let scanned = 0;
    for (let c = 0; c < this.chunks.length; c++) {
      const chunk = this.chunks[c];
      const lf = chunk.indexOf(LF);
      if (lf === -1) {
        scanned += chunk.length;
        // One octet of slack: it may be the CR of a CRLF split across chunks.
        if (this.lineBytesSoFar + scanned > this.limits.maxLineBytes + 1) {
          return ProtocolError.fatal(`Line too long (more than ${this.limits.maxLineBytes} octets)`);
        }
        continue;
      }
      const lineLength = scanned + lf;
      const before = lf > 0 ? chunk[lf - 1] : c > 0 ? this.chunks[c - 1][this.chunks[c - 1].length - 1] : undefined;
      const textLength = lineLength - (before === CR ? 1 : 0);
      if (this.lineBytesSoFar + textLength > this.limits.maxLineBytes) {
        return ProtocolError.fatal(`Line too long (more than ${this.limits.maxLineBytes} octets)`);
      }
      const parts = this.chunks.slice(0, c);
      parts.push(chunk.subarray(0, lf));
      let line = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      this.chunks.splice(0, c);
      this.chunks[0] = chunk.subarray(lf + 1);
      if (this.chunks[0].length === 0) this.chunks.shift();
      this.buffered -= lineLength + 1;
      if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
      this.lineBytesSoFar += line.length;
      return line;
    }
    return 'need-more';
  }
}
