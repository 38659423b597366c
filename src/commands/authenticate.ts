/**
 * AUTHENTICATE mechanism [initial-response] (RFC 5804 section 2.1).
 *
 * Challenges go out as `{n}` literals (sivtest and KManageSieve only read literal
 * challenge data); responses come back as quoted strings or literals; `"*"` cancels
 * and MUST be answered NO. Unknown user and wrong password look the same to the
 * client, and a failed attempt is answered only after a delay that holds up this
 * connection alone. The session is authenticated only once the user's store opened.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createExchange, mechanismNames } from '../sasl/index.js';
import type { SaslStep } from '../sasl/index.js';
import { bye, encodeLiteral, no, ok, type Response } from '../protocol/response.js';
import type { Token } from '../protocol/tokens.js';
import type { LoginFailureClass } from '../session/events.js';
import { NOT_AUTHENTICATED, defineCommand, type CommandContext, type CommandResult } from './command.js';
import { storeOpenFailureToResponse } from './to-response.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(value: Buffer): Buffer | undefined {
  const text = value.toString('latin1');
  if (!BASE64.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

export const authenticate = defineCommand({
  name: 'AUTHENTICATE',
  states: NOT_AUTHENTICATED,
  args: [
    { name: 'mechanism', kind: 'string' },
    { name: 'initial response', kind: 'string', optional: true },
  ],
  async run(ctx, [mechArg, initialArg]) {
    const { session, services } = ctx;
    const mechanism = mechArg.toString('latin1').toUpperCase();
    if (!session.authenticationAllowed) {
      // RFC 5804 section 2.1 / 5: ENCRYPT-NEEDED, the same for every user.
      return { response: no('Authentication requires TLS; use STARTTLS first', 'ENCRYPT-NEEDED') };
    }
    if (!session.saslMechanisms().includes(mechanism)) {
      // RFC 5804 section 1.3: AUTH-TOO-WEAK when site policy forbids a mechanism
      // the server otherwise supports; plain NO when it is not supported at all.
      return mechanismNames(services.auth).includes(mechanism)
        ? { response: no(`Site policy does not allow ${mechanism}`, 'AUTH-TOO-WEAK') }
        : { response: no(`Unsupported authentication mechanism ${JSON.stringify(mechanism)}`) };
    }
    const exchange = createExchange(mechanism, services.auth, {
      remoteAddress: session.origin.remoteAddress,
      secure: session.secure,
    });
    if (!exchange) return { response: no(`Unsupported authentication mechanism ${JSON.stringify(mechanism)}`) };

    let initial: Buffer | undefined;
    if (Buffer.isBuffer(initialArg)) {
      initial = decodeBase64(initialArg);
      if (!initial)
        return failed(
          ctx,
          mechanism,
          'malformed',
          'invalid base64 in the initial response',
          no('Invalid base64 in the initial response'),
        );
    }

    // The address's failed-login penalty: waited out before anything is checked,
    // so hanging up early does not skip it (login-limits.ts).
    const penalty = await services.logins.attempt(
      session.origin.remoteAddress,
      services.config.server.auth_failure_delay_ms,
    );
    if (penalty.waitMs > 0) {
      ctx.log.info(
        {
          event: 'auth-penalty',
          remote: session.origin.remoteAddress,
          failures: penalty.failures,
          delay_ms: Math.round(penalty.waitMs),
        },
        'login attempt delayed after failed logins from this address',
      );
      await sleep(penalty.waitMs);
    }
    let step: SaslStep = await exchange.start(initial);
    while (step.kind === 'challenge') {
      await ctx.write(
        Buffer.concat([encodeLiteral(Buffer.from(step.data.toString('base64'), 'latin1')), Buffer.from('\r\n')]),
      );
      const line = await ctx.readContinuation();
      if (line.kind === 'closed') return { response: bye('Connection closed during authentication'), then: 'close' };
      if (line.kind === 'fatal') {
        ctx.log.info(
          { event: 'protocol-error', reason: line.error.message },
          'closing connection during authentication',
        );
        return { response: bye(line.error.message, line.error.code), then: 'close' };
      }
      const token = line.tokens[0];
      // RFC 5804 section 2.1: the client cancels with the string "*" (quoted or a
      // literal; sieve-connect sends it bare); the server MUST answer NO.
      if (!line.error && line.tokens.length === 1 && isCancel(token)) return cancelled(ctx, mechanism);
      if (line.error || line.tokens.length !== 1 || token?.type !== 'string') {
        return failed(
          ctx,
          mechanism,
          'malformed',
          'malformed SASL response',
          no('Malformed SASL response; authentication aborted'),
        );
      }
      const response = decodeBase64(token.value);
      if (!response)
        return failed(
          ctx,
          mechanism,
          'malformed',
          'invalid base64 in SASL response',
          no('Invalid base64 in SASL response'),
        );
      step = await exchange.respond(response);
    }

    if (step.kind === 'failure') {
      if (step.reason === 'unavailable') {
        ctx.log.warn(
          { event: 'auth-unavailable', remote: session.origin.remoteAddress, mechanism, reason: step.logMessage },
          'authentication backend unavailable',
        );
        services.events.loginFailed(services.auth.name, mechanism, 'unavailable');
        return { response: no('Authentication is temporarily unavailable, please try again later', 'TRYLATER') };
      }
      return failed(ctx, mechanism, failureClass(step), step.logMessage, no('Authentication failed'), step.user);
    }

    const { identity, attached } = step.outcome;
    services.logins.succeeded(session.origin.remoteAddress);
    const max = services.config.server.max_sessions_per_user;
    let admitted: boolean;
    try {
      admitted = await session.login(
        identity,
        attached,
        Promise.resolve(services.logins.claimSession(identity.user, max)),
      );
    } catch (error) {
      attached?.terminate();
      ctx.log.error(
        { event: 'store-open-failed', user: identity.user, err: error },
        "could not open the user's script storage",
      );
      return { response: storeOpenFailureToResponse(error) };
    }
    if (!admitted) {
      ctx.log.warn(
        { event: 'too-many-sessions', remote: session.origin.remoteAddress, user: identity.user, max },
        'login refused: too many sessions for this account',
      );
      return {
        response: no(
          `Too many sessions for this account (at most ${max}); log out elsewhere or try again later`,
          'TRYLATER',
        ),
      };
    }
    ctx.log.info({ event: 'login', user: identity.user, mechanism, remote: session.origin.remoteAddress }, 'logged in');
    services.events.loginSucceeded(services.auth.name, mechanism);
    const response: Response = step.serverFinal ? ok({ sasl: step.serverFinal.toString('base64') }) : ok();
    return { response };
  },
});

function isCancel(token: Token): boolean {
  return token.type === 'atom' ? token.value === '*' : token.value.length === 1 && token.value[0] === 0x2a;
}

/**
 * A cancelled exchange is not a wrong password (no auth-failure line for fail2ban),
 * but it counts toward the per-connection limit and waits out the same delay:
 * otherwise start-then-cancel would be a free, unlogged probe (SCRAM's first
 * server message differs between known and unknown users only statistically,
 * but unlimited probes add up).
 */
async function cancelled(ctx: CommandContext, mechanism: string): Promise<CommandResult> {
  const { session, services } = ctx;
  session.authFailures++;
  services.logins.failed(session.origin.remoteAddress);
  ctx.log.info(
    { event: 'auth-cancelled', remote: session.origin.remoteAddress, mechanism },
    'authentication cancelled by the client',
  );
  services.events.loginFailed(services.auth.name, mechanism, 'cancelled');
  await delay(ctx);
  if (session.authFailures >= services.config.server.max_auth_failures) {
    return { response: bye('Too many failed authentication attempts'), then: 'close' };
  }
  return { response: no('Authentication cancelled') };
}

/** Holds this connection's answer after a failed or cancelled attempt. */
async function delay(ctx: CommandContext): Promise<void> {
  const started = performance.now();
  await sleep(ctx.services.config.server.auth_failure_delay_ms);
  ctx.services.events.failedLoginDelay((performance.now() - started) / 1000);
}

/** The operator's class of a failed exchange (the client hears the same for all). */
function failureClass(step: SaslStep & { kind: 'failure' }): LoginFailureClass {
  if (step.reason === 'malformed' || step.reason === 'authzid') return 'malformed';
  if (step.outcome?.kind === 'rejected') return step.outcome.class ?? 'unclassified';
  return 'unclassified';
}

/**
 * A failed login: logged in the one stable line fail2ban matches (whatever its
 * class: bad base64 and malformed SASL included, since they count toward
 * max_auth_failures as well), answered after a delay (this connection only), and
 * the connection ends after too many failures.
 */
async function failed(
  ctx: CommandContext,
  mechanism: string,
  failure: LoginFailureClass,
  reason: string,
  response: Response,
  user?: string,
): Promise<CommandResult> {
  const { session, services } = ctx;
  session.authFailures++;
  services.logins.failed(session.origin.remoteAddress);
  ctx.log.warn(
    {
      event: 'auth-failure',
      remote: session.origin.remoteAddress,
      user: user ?? '',
      mechanism,
      class: failure,
      reason,
    },
    'authentication failed',
  );
  services.events.loginFailed(services.auth.name, mechanism, failure);
  await delay(ctx);
  if (session.authFailures >= services.config.server.max_auth_failures) {
    return { response: bye('Too many failed authentication attempts'), then: 'close' };
  }
  return { response };
}
