/**
 * storage.token_command: a wrapper (e.g. `k5start -qtU -f /etc/keytabs/{user} --`)
 * that every session's file broker runs under, so that virtual and PAM users alike
 * can get Kerberos tickets and AFS tokens from a keytab in the process that writes.
 * The server expands its placeholders (brokerCommand in ./launcher.ts) for spawned
 * and PAM brokers alike; this checks them once at start-up, so a typo cannot
 * silently point at the wrong keytab.
 *
 * Must not know: PAM, the broker protocol.
 */
import type { StorageConfig } from '../paths.js';

/** The placeholders token_command may use. */
export const TOKEN_PLACEHOLDERS = ['user', 'localpart', 'domain', 'home', 'u1', 'u2'] as const;

/** Problems with token_command; empty when it is fine (or unset). */
export function tokenCommandProblems(storage: StorageConfig): string[] {
  const problems: string[] = [];
  const cmd = storage.token_command;
  if (cmd.length === 0) return problems;
  if (cmd[0] === '' || cmd[0].includes('{'))
    problems.push('storage.token_command: the program must be a fixed name or path');
  for (const part of cmd) {
    for (const m of part.matchAll(/\{([^{}]*)\}/g)) {
      if (!(TOKEN_PLACEHOLDERS as readonly string[]).includes(m[1])) {
        problems.push(
          `storage.token_command "${part}": unknown placeholder {${m[1]}} (known: ${TOKEN_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')})`,
        );
      }
    }
    if (part.includes('\0')) problems.push('storage.token_command: contains NUL');
  }
  return problems;
}
