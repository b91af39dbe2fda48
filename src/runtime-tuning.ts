// Process-wide memory tuning for a long-running proxy, applied by main.ts before the proxy's modules load.
// Both changes are about what a proxy allocates most: Node gives every socket read a fresh ArrayBuffer
// (100 KB of them per 100 KB message), and only a young-generation GC and its sweeper free them.
// Measured in bench/README.md ("GC and malloc tuning"); guarded by test/integration/runtime-tuning.test.ts.
import { setFlagsFromString } from 'node:v8';

export function tuneRuntime(): void {
  // V8 counts ArrayBuffer bytes allocated since the last full GC against the old generation's headroom, and
  // starts a full mark-compact when that headroom falls to the young generation's size. Dead read buffers
  // wait for the next scavenge (up to ~30 MB of them), so with the headroom V8 picks for a 12 MB heap
  // (about 2.4x) a relay of large messages ran back-to-back full GCs: 25 per 6,000 messages of 100 KB,
  // 31 per 800 of 1 MB, +70 us CPU per 100 KB message and +0.5 ms per 1 MB one. A fixed factor of 4 (the top
  // of V8's own range) leaves room for them. The flag is read whenever V8 recomputes the limit, so setting
  // it here holds however the process was launched. Cost: the heap may grow to 4x its live size between
  // full GCs.
  setFlagsFromString('--heap-growing-percent=300');

  // glibc returns the top of the heap to the kernel whenever more than 128 KB of it is free, and the
  // sweeper frees dead read buffers in a batch: every read then landed in pages the kernel had to fault
  // in and zero again (9-18 minor faults and +30 us system time per 100 KB message). Freeing one mmap-sized
  // block raises glibc's dynamic thresholds (mallopt(3), M_MMAP_THRESHOLD: "adjusted upward to the size of
  // the freed block", the trim threshold to twice that). The block is as large as glibc allows for that
  // (32 MB, DEFAULT_MMAP_THRESHOLD_MAX on 64-bit) so up to 64 MB of freed heap is kept for the next reads:
  // one scavenge frees ~30 MB of 100 KB reads at once, and with a 16 MB block (32 MB kept) that batch
  // sometimes crossed the line and the heap went up and down by brk hundreds of times per 3,000 messages
  // (4-13 faults per message in about 1 run of 10 on a busy machine). Elsewhere (musl, jemalloc) this is a
  // 32 MB buffer allocated and dropped.
  let block: Buffer | undefined = Buffer.allocUnsafeSlow(32 * 1024 * 1024 - 64 * 1024);
  block[0] = 1;
  block = undefined;
}
