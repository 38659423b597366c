/**
 * Reads a TOML configuration file and checks it against the schema. Every problem
 * is reported with its key path (`server.listen[0]`), and start-up stops: a typo
 * must never be silently ignored in a mail server.
 *
 * Must not know: what the keys are used for.
 */
import { readFile } from 'node:fs/promises';
import { parse as parseToml } from 'smol-toml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

export class ConfigError extends Error {
  constructor(
    readonly problems: readonly string[],
    readonly source: string,
  ) {
    super(`${source}: invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export function parseConfig(text: string, source = 'config'): Config {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (error) {
    throw new ConfigError([error instanceof Error ? error.message : String(error)], source);
  }
  return validateConfig(raw, source);
}

export function validateConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues), source);
  return result.data;
}

export async function loadConfig(path: string): Promise<Config> {
  return parseConfig(await readConfigText(path), path);
}

/** The file's text, for a caller that keeps it (a cluster primary hands it to its workers). */
export async function readConfigText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError([`cannot read: ${(error as Error).message}`], path);
  }
}

function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = issue.path.reduce<string>(
      (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)),
      '',
    );
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => (path ? `${path}.${k}` : k));
      return `unknown key${keys.length > 1 ? 's' : ''}: ${keys.join(', ')}`;
    }
    return `${path || '(top level)'}: ${issue.message}`;
  });
}
