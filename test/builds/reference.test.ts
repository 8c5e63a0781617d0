import { describe, expect, it } from 'vitest';
import { NAME_PATTERN, nameRuleViolation, TAG_PATTERN, tagRuleViolation } from '../../src/builds/reference.ts';
import { loadSchemas } from '../../src/api/openapi.ts';

const VALID = ['busybox', 'library/busybox', 'my-org/app_v2', 'a__b', 'a.b-c', 'localhost/app', 'localhost:5000/team/app', 'Registry.Example.com:443/x', 'a---b'];
const INVALID: Array<[string, RegExp]> = [
  ['Busybox', /lowercase/],
  ['team/App', /lowercase/],
  ['app_', /must be lowercase letters and digits/],
  ['.app', /must be lowercase letters and digits/],
  ['a___b', /must be lowercase letters and digits/],
  ['a//b', /empty path components/],
  ['/a', /empty path components/],
  ['host:port/a', /numeric port/],
  ['-bad.host/a', /registry host/],
  ['', /empty/],
  ['a'.repeat(256), /at most 255/],
];

describe('image names', () => {
  it.each(VALID)('%s is valid', (name) => {
    expect(nameRuleViolation(name)).toBeNull();
    expect(new RegExp(NAME_PATTERN).test(name)).toBe(true);
  });
  it.each(INVALID)('%j is refused: %s', (name, rule) => {
    expect(nameRuleViolation(name)).toMatch(rule);
    if (name.length <= 255) expect(new RegExp(NAME_PATTERN).test(name)).toBe(false);
  });
  it('publishes the same patterns in openapi.yaml', () => {
    const spec = loadSchemas().find((s) => s.$id === 'BuildSpec') as unknown as { properties: { name: { pattern: string }; tag: { pattern: string } } };
    expect(spec.properties.name.pattern).toBe(NAME_PATTERN);
    expect(spec.properties.tag.pattern).toBe(TAG_PATTERN);
  });
});

describe('tags', () => {
  it.each(['latest', 'v1.2.3', '_x', 'A-b_c.d', 'x'.repeat(128)])('%s is valid', (tag) => expect(tagRuleViolation(tag)).toBeNull());
  it.each(['.x', '-x', 'a:b', 'x'.repeat(129), ''])('%j is refused', (tag) => expect(tagRuleViolation(tag)).not.toBeNull());
});
