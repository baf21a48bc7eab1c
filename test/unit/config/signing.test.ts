/**
 * `signing` and `signingSecret` of http targets (SPEC section 11): the forms accepted, the
 * resolved list, and the errors that name the key path without echoing a secret.
 */
import { describe, expect, it } from '@jest/globals';
import { describeConfig, parseConfig, type HttpTargetConfig } from '../../../src/config/index.js';
import { RelayError, isRelayError } from '../../../src/errors.js';

const WHSEC = `whsec_${Buffer.from('a 24-byte signing key ..').toString('base64')}`;

/** A config with one http target `hooks` whose extra keys are `keys` (YAML flow mapping entries). */
function withHooks(keys: string): string {
  return `
targets:
  hooks: { type: http, url: "http://127.0.0.1:9/hook"${keys === '' ? '' : `, ${keys}`} }
routes: [{ match: "*", target: hooks }]
`;
}

function hooksOf(keys: string, env: NodeJS.ProcessEnv = {}): HttpTargetConfig {
  const target = parseConfig(withHooks(keys), env).targets['hooks'];
  if (target?.type !== 'http') throw new Error('expected the http target hooks');
  return target;
}

/** The ONWARD_ERR_CONFIG_INVALID message of parsing `yaml`, one entry per problem. */
function problemsOf(keys: string): string[] {
  try {
    parseConfig(withHooks(keys), {});
  } catch (err) {
    expect(isRelayError(err, 'ONWARD_ERR_CONFIG_INVALID')).toBe(true);
    return (err as RelayError).message.split('\n');
  }
  throw new Error('expected the config to be rejected');
}

describe('http target signing config', () => {
  it('defaults to the onward scheme and no secret: no signature headers', () => {
    expect(hooksOf('')).toMatchObject({ signing: 'onward', signingSecrets: [] });
    expect(hooksOf('signingSecret: null')).toMatchObject({ signing: 'onward', signingSecrets: [] });
  });

  it('normalises one secret or a list (newest first, ${VAR} substituted) to a list', () => {
    expect(hooksOf('signingSecret: s3cret').signingSecrets).toEqual(['s3cret']);
    const rotated = hooksOf(`signing: both, signingSecret: ["\${NEW_SECRET}", "${WHSEC}", old-plain]`, { NEW_SECRET: 'new-plain' });
    expect(rotated).toMatchObject({ signing: 'both', signingSecrets: ['new-plain', WHSEC, 'old-plain'] });
    expect(hooksOf(`signing: standard, signingSecret: "${WHSEC}"`)).toMatchObject({ signing: 'standard', signingSecrets: [WHSEC] });
  });

  it('refuses an unknown scheme, naming the key and the choices', () => {
    expect(problemsOf('signing: svix, signingSecret: k')).toEqual([
      'targets.hooks.signing: expected one of onward, standard, both, got "svix"',
    ]);
  });

  it.each(['standard', 'both'])('requires a secret with signing: %s', (scheme) => {
    expect(problemsOf(`signing: ${scheme}`)).toEqual([`targets.hooks.signingSecret: required with signing: ${scheme}`]);
    expect(problemsOf(`signing: ${scheme}, signingSecret: null`)).toEqual([`targets.hooks.signingSecret: required with signing: ${scheme}`]);
  });

  it('refuses a whsec_ secret that does not decode, naming its place in the list and not its value', () => {
    const bad = 'whsec_not*base64';
    const problems = problemsOf(`signing: standard, signingSecret: ["${WHSEC}", "${bad}", whsec_]`);
    expect(problems).toEqual([
      expect.stringMatching(/^targets\.hooks\.signingSecret\[1\]: a whsec_ secret must be whsec_ followed by non-empty padded base64$/),
      expect.stringMatching(/^targets\.hooks\.signingSecret\[2\]: a whsec_ secret must be /),
    ]);
    expect(problems.join('\n')).not.toContain('not*base64');
    expect(problemsOf('signing: both, signingSecret: whsec_YWJ')).toEqual([
      expect.stringMatching(/^targets\.hooks\.signingSecret: a whsec_ secret must be /),
    ]);
    // The onward scheme keys its HMAC with the secret as written: any string is a valid key there.
    expect(hooksOf(`signingSecret: "${bad}"`).signingSecrets).toEqual([bad]);
  });

  it('refuses an empty list, an empty secret and a non-string', () => {
    expect(problemsOf('signingSecret: []')).toEqual(['targets.hooks.signingSecret: expected at least 1 entry']);
    expect(problemsOf('signingSecret: [k, ""]')).toEqual(['targets.hooks.signingSecret[1]: expected a non-empty string']);
    expect(problemsOf('signingSecret: { key: k }')).toEqual([
      'targets.hooks.signingSecret: expected a secret or a list of secrets (newest first)',
    ]);
  });

  it('describes the scheme and the number of secrets, never a secret', () => {
    const config = parseConfig(withHooks(`signing: both, signingSecret: [new-s3cret, "${WHSEC}"]`), {});
    const text = describeConfig(config);
    expect(text).toContain('signed both (2 secrets ***)');
    expect(text).not.toContain('new-s3cret');
    expect(text).not.toContain(WHSEC);
  });
});
