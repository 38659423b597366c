/**
 * From a framed command to a result: look the command up, check that it is valid
 * in the session's state and that its arguments have the declared shape, run it,
 * and map any failure to a response (through to-response.ts only).
 *
 * Must not know: sockets, TLS, framing.
 */
import { ProtocolError } from '../protocol/errors.js';
import { no } from '../protocol/response.js';
import type { Token } from '../protocol/tokens.js';
import type { ArgValue, CommandContext, CommandResult, RegisteredCommand } from './command.js';
import { COMMANDS } from './registry.js';
import { failureToResponse } from './to-response.js';

export interface Dispatched {
  readonly command?: string;
  readonly result: CommandResult;
  /** The client sent something unusable: counts toward the bad-command limit. */
  readonly bad: boolean;
  /** The command is one the server knows (unknown names are not reported by name). */
  readonly known?: boolean;
}

/** RFC 5804 section 4: numbers are 32-bit unsigned. */
const MAX_NUMBER = 0xffff_ffff;

export async function dispatch(ctx: CommandContext, tokens: Token[], frameError?: ProtocolError): Promise<Dispatched> {
  const first = tokens[0];
  if (!first || first.type !== 'atom') {
    const result = frameError
      ? { response: failureToResponse(frameError).response }
      : { response: no('Expected a command name') };
    return { result, bad: true };
  }
  const name = first.value.toUpperCase(); // RFC 5804 section 4: command names are case-insensitive
  const command = COMMANDS.get(name);
  if (!command) return { command: name, result: { response: no(`Unknown command ${name}`) }, bad: true };
  if (frameError)
    return {
      command: name,
      result: { response: frameErrorResponse(name, frameError) },
      bad: !frameError.code,
      known: true,
    };
  if (!command.states.includes(ctx.session.state)) {
    const text =
      ctx.session.state === 'authenticated' ? `${name} is not allowed after login` : `${name} needs a login first`;
    return { command: name, result: { response: no(text) }, bad: true, known: true };
  }
  const args = parseArgs(command, tokens.slice(1));
  if (typeof args === 'string')
    return { command: name, result: { response: no(`${name}: ${args}`) }, bad: true, known: true };
  try {
    return { command: name, result: await command.run(ctx, args), bad: false, known: true };
  } catch (error) {
    const mapped = failureToResponse(error);
    if (mapped.unexpected) ctx.log.error({ command: name, err: error }, 'command failed unexpectedly');
    else ctx.log.info({ command: name, detail: mapped.detail }, 'command refused');
    if (mapped.storageError) ctx.services.events.storageError(mapped.storageError);
    return { command: name, result: { response: mapped.response }, bad: false, known: true };
  }
}

/**
 * The framer flags an over-size literal with QUOTA/MAXSIZE before it knows the
 * command. That code belongs to PUTSCRIPT alone (RFC 5804 section 1.3); CHECKSCRIPT
 * must not report quota (section 2.12), and any other command simply carried a
 * literal too large to read.
 */
function frameErrorResponse(name: string, error: ProtocolError) {
  if (error.code === 'QUOTA/MAXSIZE' && name !== 'PUTSCRIPT') return no(error.message);
  return failureToResponse(error).response;
}

function parseArgs(command: RegisteredCommand, tokens: Token[]): ArgValue[] | string {
  const values: ArgValue[] = [];
  const required = command.args.filter((a) => !a.optional).length;
  if (tokens.length < required) return 'missing arguments';
  if (tokens.length > command.args.length) return 'too many arguments';
  for (let i = 0; i < command.args.length; i++) {
    const spec = command.args[i];
    const token = tokens[i];
    if (!token) {
      values.push(undefined);
      continue;
    }
    if (spec.kind === 'string') {
      if (token.type !== 'string') return `${spec.name} must be a quoted string or a literal`;
      values.push(token.value);
    } else {
      if (token.type !== 'atom' || !/^\d{1,10}$/.test(token.value) || Number(token.value) > MAX_NUMBER) {
        return `${spec.name} must be a number`;
      }
      values.push(Number(token.value));
    }
  }
  return values;
}
