import { describe, expect, it } from 'vitest';
import { EqualityFilter, FilterParser, SubstringFilter, AndFilter, PresenceFilter } from 'ldapts';
import {
  escapeDnValue,
  escapeFilterValue,
  expandLdapTemplate,
  mentionsUser,
  templateValues,
  unknownPlaceholders,
} from '../../src/auth/ldap-escape.js';

describe('escapeFilterValue (RFC 4515 section 3)', () => {
  it.each([
    ['alice', 'alice'],
    ['al*', 'al\\2a'],
    ['(x)', '\\28x\\29'],
    ['a\\b', 'a\\5cb'],
    ['nul\u0000', 'nul\\00'],
    ['jürgen', 'jürgen'],
    ['*)(uid=*', '\\2a\\29\\28uid=\\2a'],
  ])('%j -> %j', (input, expected) => {
    expect(escapeFilterValue(input)).toBe(expected);
  });

  it('keeps an injected wildcard a literal equality value once parsed', () => {
    const f = FilterParser.parseString(`(uid=${escapeFilterValue('al*')})`);
    expect(f).toBeInstanceOf(EqualityFilter);
    expect((f as EqualityFilter).value).toBe('al*');
    // Unescaped, the same text would be a substring search: the attack the escaping stops.
    expect(FilterParser.parseString('(uid=al*)')).toBeInstanceOf(SubstringFilter);
  });

  it('keeps a filter-breaking name inside one assertion', () => {
    const evil = 'x)(objectClass=*))(|(uid=*';
    const f = FilterParser.parseString(`(&(objectClass=posixAccount)(uid=${escapeFilterValue(evil)}))`);
    expect(f).toBeInstanceOf(AndFilter);
    const parts = (f as AndFilter).filters;
    expect(parts).toHaveLength(2);
    expect(parts[1]).toBeInstanceOf(EqualityFilter);
    expect((parts[1] as EqualityFilter).value).toBe(evil);
    expect(parts.some((p) => p instanceof PresenceFilter)).toBe(false);
  });

  it('leaves non-ASCII text as characters so it reaches the server as UTF-8', () => {
    const f = FilterParser.parseString(`(uid=${escapeFilterValue('jürgen')})`) as EqualityFilter;
    expect(f.value).toBe('jürgen');
  });
});

describe('escapeDnValue (RFC 4514 section 2.4)', () => {
  it.each([
    ['alice', 'alice'],
    ['a+b,c', 'a\\+b\\,c'],
    ['x;y<z>"q"', 'x\\;y\\<z\\>\\"q\\"'],
    ['back\\slash', 'back\\\\slash'],
    ['#lead', '\\#lead'],
    ['mid#dle', 'mid#dle'],
    [' lead', '\\ lead'],
    ['trail ', 'trail\\ '],
    ['in side', 'in side'],
    ['a=b', 'a\\=b'],
    ['nul\u0000', 'nul\\00'],
    ['jürgen', 'jürgen'],
  ])('%j -> %j', (input, expected) => {
    expect(escapeDnValue(input)).toBe(expected);
  });
});

describe('templates', () => {
  it('splits user@domain at the last @', () => {
    expect(templateValues('a@b@example.org')).toEqual({
      user: 'a@b@example.org',
      localpart: 'a@b',
      domain: 'example.org',
    });
    expect(templateValues('plain')).toEqual({ user: 'plain', localpart: 'plain', domain: '' });
  });

  it('expands every occurrence, escaping each value', () => {
    const out = expandLdapTemplate(
      '(|(uid={user})(mail={user})(&(uid={localpart})(o={domain})))',
      templateValues('a*@x(y)'),
      escapeFilterValue,
    );
    expect(out).toBe('(|(uid=a\\2a@x\\28y\\29)(mail=a\\2a@x\\28y\\29)(&(uid=a\\2a)(o=x\\28y\\29)))');
  });

  it('does not expand placeholders that appear inside a value', () => {
    // A user literally named "{domain}" must not be expanded a second time.
    expect(expandLdapTemplate('uid={user}', templateValues('{domain}'), escapeDnValue)).toBe('uid={domain}');
  });

  it('reports unknown placeholders and whether the user is mentioned', () => {
    expect(unknownPlaceholders('(uid={usr})(x={user})')).toEqual(['usr']);
    expect(mentionsUser('(uid={localpart})')).toBe(true);
    expect(mentionsUser('(o={domain})')).toBe(false);
  });
});
