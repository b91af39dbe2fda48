// Ends a test run with one plain line, "N passed, N failed[, N skipped]", that any CI log reader can
// parse (vitest's own summary is coloured and spread over several lines).
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else skipped++;
      }
    }
    const line = `${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`;
    // Written at exit so it is the very last line, after vitest's own summary.
    process.once('exit', () => process.stdout.write(`\n${line}\n`));
  }
}
