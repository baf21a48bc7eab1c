/** `onward config-schema` (SPEC 1) prints the config's JSON Schema: the checked-in file, byte for byte. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '../../helpers/common.js';
import { runCli, useCliTeardown } from '../../helpers/cli.js';

describe('onward config-schema', () => {
  useCliTeardown();

  it('prints config/onward.schema.json and exits 0, without needing a config file', async () => {
    const r = await runCli(null, ['config-schema']);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(r.stdout).toBe(readFileSync(join(REPO_ROOT, 'config', 'onward.schema.json'), 'utf8'));
    expect((JSON.parse(r.stdout) as { $schema?: string }).$schema).toBe('https://json-schema.org/draft/2020-12/schema');
  });
});
