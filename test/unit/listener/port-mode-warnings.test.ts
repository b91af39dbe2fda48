// Port/mode mix-ups are warned about at start, on the listener side and the upstream side.
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../../src/config/schema.js';
import { warnings } from '../../../src/config/load.js';

const cfg = (listen: number, lmode: string, uport: number, umode: string) =>
  configSchema.parse({
    listeners: [{ name: 'l', listen: `127.0.0.1:${listen}`, upstream: 'u', tls: { mode: lmode } }],
    upstreams: { u: { host: 'smtp.example.net', port: uport, tls: { mode: umode } } },
  });

describe('port/mode warnings', () => {
  it('implicit TLS on 587 or 25, STARTTLS on 465, on either side', () => {
    expect(warnings(cfg(587, 'implicit', 465, 'starttls')).join('\n')).toMatch(
      /listeners\[0\] \(l\): implicit TLS on port 587[\s\S]*upstreams\.u: STARTTLS on port 465/,
    );
    expect(warnings(cfg(465, 'starttls', 25, 'implicit')).join('\n')).toMatch(
      /listeners\[0\] \(l\): STARTTLS on port 465[\s\S]*upstreams\.u: implicit TLS on port 25/,
    );
  });

  it('the usual pairings are quiet', () => {
    expect(warnings(cfg(587, 'starttls', 465, 'implicit')).filter((w) => /port/.test(w))).toEqual([]);
  });
});
