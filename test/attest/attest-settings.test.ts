/** The settings attestations read: BALER_BUILDER_ID (a URI, with a default) and BALER_SIGNING_KEY_FILE. */
import { expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';

it('takes a builder id that is a URI, and has a default that says it was not configured', () => {
  expect(loadConfig({}).builderId).toBe('https://baler.dev/builders/unconfigured');
  expect(loadConfig({ BALER_BUILDER_ID: 'https://builds.example.com/baler' }).builderId).toBe('https://builds.example.com/baler');
  expect(loadConfig({ BALER_BUILDER_ID: 'urn:example:builder' }).builderId).toBe('urn:example:builder');
  for (const bad of ['builder-1', '/relative/path', 'http://']) {
    expect(() => loadConfig({ BALER_BUILDER_ID: bad }), bad).toThrow(/BALER_BUILDER_ID must be a URI/);
  }
});

it('signs only with a key file set', () => {
  expect(loadConfig({}).signingKeyFile).toBeUndefined();
  expect(loadConfig({ BALER_SIGNING_KEY_FILE: '/etc/baler/signing.pem' }).signingKeyFile).toBe('/etc/baler/signing.pem');
});
