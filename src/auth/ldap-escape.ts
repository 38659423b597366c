/**
 * Escaping of untrusted strings (the login name) for the two places they enter
 * LDAP: search filters (RFC 4515) and distinguished names (RFC 4514), and the
 * expansion of the `{user}`, `{localpart}`, `{domain}` placeholders in the
 * configured filter and DN templates.
 *
 * Must not know: ldapts, sockets, configuration loading or what a login is.
 */

/** Placeholders a filter or DN template may contain. */
export const TEMPLATE_PLACEHOLDERS = ['user', 'localpart', 'domain'] as const;
export type TemplatePlaceholder = (typeof TEMPLATE_PLACEHOLDERS)[number];
export type TemplateValues = Readonly<Record<TemplatePlaceholder, string>>;

/**
 * RFC 4515 section 3: in an assertion value, `*`, `(`, `)`, `\` and NUL must be
 * written as `\XX` (two hex digits). Everything else, UTF-8 included, may stay
 * as it is. Non-ASCII is deliberately left alone: a filter parser that turns
 * `\c3\a9` back into two separate code units would corrupt it.
 */
export function escapeFilterValue(value: string): string {
  return value.replace(/[*()\\\u0000]/g, (c) => `\\${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/**
 * RFC 4514 section 2.4: in an attribute value of a DN string, `"`, `+`, `,`,
 * `;`, `<`, `>`, `\` must be escaped anywhere, `#` or space at the start and
 * space at the end, and NUL as `\00`. `=` may be escaped and is, because some
 * servers' DN parsers are stricter than the RFC about it.
 */
export function escapeDnValue(value: string): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\u0000') out += '\\00';
    else if ('"+,;<>\\='.includes(c)) out += `\\${c}`;
    else if ((i === 0 && (c === ' ' || c === '#')) || (i === value.length - 1 && c === ' ')) out += `\\${c}`;
    else out += c;
  }
  return out;
}

/** The values for the placeholders, derived from the login name. */
export function templateValues(user: string): TemplateValues {
  const at = user.lastIndexOf('@');
  return at < 0
    ? { user, localpart: user, domain: '' }
    : { user, localpart: user.slice(0, at), domain: user.slice(at + 1) };
}

/** Names inside `{...}` that are not known placeholders (for start-up checks). */
export function unknownPlaceholders(template: string): string[] {
  const known: readonly string[] = TEMPLATE_PLACEHOLDERS;
  return [...template.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1]).filter((name) => !known.includes(name));
}

/** True when the template contains at least one placeholder naming the user. */
export function mentionsUser(template: string): boolean {
  return /\{(user|localpart)\}/.test(template);
}

/**
 * Replaces every known placeholder with its value passed through `escape`.
 * Unknown `{...}` sequences are left as they are (the start-up check reports them).
 */
export function expandLdapTemplate(
  template: string,
  values: TemplateValues,
  escape: (value: string) => string,
): string {
  return template.replace(/\{(user|localpart|domain)\}/g, (_m, name: TemplatePlaceholder) => escape(values[name]));
}
