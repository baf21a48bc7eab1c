// Runs once before any suite (jest globalSetup). Suites spawn `bin/onward`, which loads the
// compiled `dist/`; building here, once, means a fresh clone needs nothing but `npm test`,
// and no two jest workers ever build (or read a half-written dist/) at the same time.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export default function buildOnce() {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
}
