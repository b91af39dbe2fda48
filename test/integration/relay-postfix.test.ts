// Real peers nobody here wrote: swaks -> mailshim -> a private Postfix. The EHLO swaks sees carries the
// listener's rewrite; a message with dot-stuffed lines, 8-bit bytes and a long body arrives byte-identical.
import { writeFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { swaks } from './harness/peers.js';
import { connect } from './harness/dialogue.js';
import { startPostfix, type PostfixInstance } from './harness/postfix.js';
import { startProxy, type ProxyHandle } from './harness/start-proxy.js';

/** The EHLO reply lines swaks printed ("<-  250-PIPELINING" -> "PIPELINING"), first line included. */
function ehloLines(swaksOut: string): string[] {
  const lines = swaksOut.split('\n');
  const at = lines.findIndex((l) => /^ -> EHLO /.test(l));
  const out: string[] = [];
  for (const l of lines.slice(at + 1)) {
    const m = /^<-\s+250([- ])(.*)$/.exec(l);
    if (!m) break;
    out.push(m[2]);
    if (m[1] === ' ') break;
  }
  return out;
}

function message(): Buffer {
  const head = Buffer.from(
    'From: Door Phone <doorphone@example.org>\r\n' +
      'To: owner@example.test\r\n' +
      'Subject: Visitor at the door\r\n' +
      'MIME-Version: 1.0\r\n' +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      'Content-Transfer-Encoding: 8bit\r\n' +
      '\r\n' +
      '.a line that starts with a dot\r\n' +
      '..two dots\r\n' +
      '.\tdot and tab\r\n' +
      'UTF-8: Tr\u00e4ger 100 \u20ac \u65e5\u672c\u8a9e\r\n',
    'utf8',
  );
  const latin1 = Buffer.from('Latin-1: Tr\xe4ger \xa3 \xe9t\xe9 \xff\r\n', 'latin1');
  const long: string[] = [];
  for (let i = 0; i < 4000; i++) {
    long.push(`${i % 50 === 0 ? '.' : ''}line ${String(i).padStart(5, '0')}: the quick brown fox jumps over the lazy dog ${'~'.repeat(i % 40)}\r\n`);
  }
  return Buffer.concat([head, latin1, Buffer.from(long.join(''), 'latin1'), Buffer.from('.\r\nlast line\r\n')]);
}

describe('swaks -> mailshim -> Postfix', () => {
  let postfix: PostfixInstance;
  let proxy: ProxyHandle;
  let dir: string;

  beforeAll(async () => {
    [postfix, dir] = await Promise.all([
      startPostfix({ sasl: { users: [{ user: 'notify', password: 'n0tify-secret' }], mechanisms: 'PLAIN LOGIN' } }),
      mkdtemp(join(tmpdir(), 'mailshim-relay-')),
    ]);
    proxy = await startProxy({
      listeners: [
        {
          name: 'relay',
          hostname: 'proxy.test',
          upstream: 'postfix',
          ehlo: [{ remove: 'DSN' }, { 'add-auth-equals': true }, { replace: { keyword: 'SIZE', with: 'SIZE 1000000' } }],
        },
      ],
      upstreams: { postfix: { host: '127.0.0.1', port: postfix.port } },
    });
  });

  afterAll(async () => {
    await proxy?.stop();
    await postfix?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('swaks sees the rewritten EHLO and the message is delivered byte-identical', async () => {
    const msg = message();
    const file = join(dir, 'message.eml');
    // swaks strips one trailing CRLF.CRLF and appends its own, dot-stuffing the lines in between.
    await writeFile(file, Buffer.concat([msg, Buffer.from('.\r\n')]));
    const r = await swaks([
      '--server', `127.0.0.1:${proxy.port}`,
      '--ehlo', 'device.example.org',
      '--from', 'doorphone@example.org',
      '--to', 'owner@example.test',
      '--data', `@${file}`,
      '--suppress-data', // the 300 KB body would flood the output
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const ehlo = ehloLines(r.stdout);
    expect(ehlo[0]).toMatch(/^mx\.example\.test/);
    expect(ehlo).toContain('AUTH PLAIN LOGIN');
    expect(ehlo).toContain('AUTH=PLAIN LOGIN'); // add-auth-equals
    expect(ehlo).toContain('SIZE 1000000'); // replace
    expect(ehlo).not.toContain('DSN'); // remove
    expect(ehlo).not.toContain('CHUNKING'); // never offered: BDAT is refused
    expect(ehlo).toContain('PIPELINING');

    const [d] = await postfix.waitForDeliveries(1);
    expect(d.contentRaw.length).toBe(msg.length);
    expect(d.contentRaw.equals(msg)).toBe(true);
    expect(d.sender).toBe('doorphone@example.org');
    expect(d.recipients).toEqual(['owner@example.test']);
    // Postfix saw the client's own EHLO name, relayed unchanged.
    expect(d.receivedHeader).toMatch(/^Received: from device\.example\.org \(/);
    const [summary] = await proxy.waitForSessionEnd(1);
    expect(summary.messages).toBe(1);
    expect(summary.result).toBe('ok');
  });

  it('a HELO-only client (swaks --protocol SMTP) gets a one-line 250 and its message is delivered', async () => {
    const r = await swaks([
      '--server', `127.0.0.1:${proxy.port}`,
      '--protocol', 'SMTP',
      '--helo', 'old-device.example.org',
      '--from', 'old@example.org',
      '--to', 'owner@example.test',
      '--header', 'Subject: from a HELO-only client',
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ -> HELO old-device\.example\.org$/m);
    const heloReply = r.stdout.split('\n').filter((l) => /^<-\s+250[- ]/.test(l))[0];
    expect(heloReply).toMatch(/^<-\s+250 mx\.example\.test/);
    expect(r.stdout).not.toMatch(/^<-\s+250-/m); // no capability list for a HELO client
    const all = await postfix.waitForDeliveries(2);
    const d = all.find((x) => x.sender === 'old@example.org')!;
    expect(d.content).toContain('Subject: from a HELO-only client');
    expect(d.receivedHeader).toMatch(/^Received: from old-device\.example\.org \(/);
  });

  it('a second EHLO in the same session gets the same rewrite', async () => {
    const c = await connect(proxy.port);
    const first = await c.ehloDone('twice.example.org');
    c.send('EHLO twice.example.org');
    const second = await c.expect(/^250-/);
    expect(second.raw).toBe(first.raw);
    expect(second.lines).toContain('AUTH=PLAIN LOGIN');
    expect(second.lines).not.toContain('DSN');
    c.send('QUIT');
    await c.expect(/^221 /);
    await c.closed();
  });

  it('AUTH passes through to Cyrus SASL: "*" cancels, a wrong password gets 535, the retry gets 235', async () => {
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    const c = await connect(proxy.port);
    await c.ehloDone();
    c.send('AUTH LOGIN');
    await c.expect(/^334 VXNlcm5hbWU6/);
    c.send('*');
    await c.expect(/^501 /);
    c.send(`AUTH PLAIN ${b64('\0notify\0wrong')}`);
    await c.expect(/^535 5\.7\.8 /);
    c.send('AUTH LOGIN');
    await c.expect(/^334 VXNlcm5hbWU6/);
    c.send(b64('notify'));
    await c.expect(/^334 UGFzc3dvcmQ6/);
    c.send(b64('n0tify-secret'));
    await c.expect(/^235 2\.7\.0 /);
    c.send('MAIL FROM:<notify@example.test>');
    await c.expect(/^250 /);
    c.send('RCPT TO:<someone@elsewhere.example>'); // relaying needs the login
    await c.expect(/^250 /);
    c.send('QUIT');
    await c.expect(/^221 /);
    await c.closed();
    await postfix.waitForLog(/sasl_method=LOGIN, sasl_username=notify/);
    // The transcript never carries the secrets.
    const lines = proxy.events.flatMap((e) => (e.type === 'protocol' ? [e.line] : []));
    expect(lines.join('\n')).not.toContain(b64('n0tify-secret'));
    expect(lines.join('\n')).not.toContain(b64('\0notify\0wrong'));
  });
});
