// Runs once before all test files: build dist/ a single time, so tests that run the real CLI
// (`node dist/main.js ...`) test what a user runs, and no two test files rebuild it at once.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
}
