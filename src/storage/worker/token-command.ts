/**
 * storage.token_command: a wrapper (e.g. `k5start -qtU -f /etc/keytabs/{user} --`)
 * that every per-session worker runs under, so that virtual and PAM users alike can
 * get Kerberos tickets and AFS tokens from a keytab. For spawned workers the
 * launcher expands it; for PAM users the helper does, because only it knows the
 * account PAM settled on. Both understand the same placeholders, checked here once
 * at start-up so a typo cannot silently point at the wrong keytab.
 *
 * Must not know: PAM, the storage RPC.
 */
import type { StorageConfig } from '../paths.js';
import { workerCommand } from './process-launcher.js';

/** The placeholders both the launcher and the PAM helper expand. */
export const TOKEN_PLACEHOLDERS = ['user', 'localpart', 'domain', 'home', 'u1', 'u2'] as const;

/** Problems with token_command; empty when it is fine (or unset). */
export function tokenCommandProblems(storage: StorageConfig): string[] {
  const problems: string[] = [];
  const cmd = storage.token_command;
  if (cmd.length === 0) return problems;
  if (cmd[0] === '' || cmd[0]!.includes('{')) problems.push('storage.token_command: the program must be a fixed name or path');
  for (const part of cmd) {
    for (const m of part.matchAll(/\{([^{}]*)\}/g)) {
      if (!(TOKEN_PLACEHOLDERS as readonly string[]).includes(m[1]!)) {
        problems.push(`storage.token_command "${part}": unknown placeholder {${m[1]}} (known: ${TOKEN_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')})`);
      }
    }
    if (part.includes('\0')) problems.push('storage.token_command: contains NUL');
  }
  return problems;
}

/**
 * The command the PAM helper execs as the worker: token_command (unexpanded: the
 * helper expands it) followed by the worker itself. For PamBackend's workerCommand.
 */
export function pamWorkerCommand(storage: StorageConfig): string[] {
  return [...storage.token_command, ...workerCommand()];
}
