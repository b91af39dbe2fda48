// Cross-check against an independent implementation: Perl's Authen::SASL (libauthen-sasl-perl, which
// scripts/install-peers.sh installs for swaks). Runs locally, no network.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { createCramMd5Server } from '../../../../src/auth/mechanisms/cram-md5.js';
import { createDigestMd5Server, digestMd5ClientResponse } from '../../../../src/auth/mechanisms/digest-md5.js';
import type { SaslStep } from '../../../../src/types.js';

const PERL = String.raw`
use strict; use warnings; no warnings "once"; use Authen::SASL qw(Perl); use MIME::Base64;
my ($mode, @a) = @ARGV;
if ($mode eq 'cram-client') {
  my ($user, $pass, $ch) = @a;
  my $c = Authen::SASL->new(mechanism => 'CRAM-MD5', callback => { user => $user, pass => $pass })->client_new('smtp', 'localhost');
  $c->client_start;
  print encode_base64($c->client_step(decode_base64($ch)), '');
} elsif ($mode eq 'digest-client') {
  my ($user, $pass, $host, $ch, $rsp) = @a;
  $Authen::SASL::Perl::DIGEST_MD5::CNONCE = 'mailshim-cross-check';
  my $c = Authen::SASL->new(mechanism => 'DIGEST-MD5', callback => { user => $user, pass => $pass })->client_new('smtp', $host);
  $c->client_start;
  my $r = $c->client_step(decode_base64($ch));
  die $c->error if $c->error;
  if (defined $rsp) { $c->client_step(decode_base64($rsp)); print $c->error ? 'error: ' . $c->error : 'ok'; }
  else { print encode_base64($r, ''); }
} elsif ($mode eq 'digest-server') {
  my ($user, $pass, $host, $resp) = @a;
  $Authen::SASL::Perl::DIGEST_MD5::NONCE = 'mailshim-cross-check';
  my $sasl = Authen::SASL->new(mechanism => 'DIGEST-MD5',
    callback => { getsecret => sub { my ($self, $p, $cb) = @_; $cb->($p->{user} eq $user ? $pass : undef) } });
  my $s = $sasl->server_new('smtp', $host, { no_integrity => 1 });
  my $ch; $s->server_start('', sub { $ch = shift });
  if (!defined $resp) { print encode_base64($ch, ''); exit 0; }
  my $out; $s->server_step(decode_base64($resp), sub { $out = shift });
  print $s->error ? 'error: ' . $s->error : 'ok ' . ($out // '');
}
`;

function perl(...args: string[]): string {
  return execFileSync('perl', ['-e', PERL, ...args], { encoding: 'utf8', timeout: 10_000 });
}

function challengeOf(step: SaslStep): Buffer {
  if (step.kind !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(step)}`);
  return step.challenge;
}

describe('cross-check with Perl Authen::SASL', () => {
  it('CRAM-MD5: our server accepts the Perl client', async () => {
    const mech = createCramMd5Server({ hostname: 'mx.example.com', lookupSecret: async (u) => (u === 'tim' ? 'tanstaaftanstaaf' : undefined) });
    const challenge = challengeOf(await mech.next(undefined));
    const answer = Buffer.from(perl('cram-client', 'tim', 'tanstaaftanstaaf', challenge.toString('base64')), 'base64');
    expect(await mech.next(answer)).toEqual({ kind: 'done', identity: { authcid: 'tim' } });
  });

  it('DIGEST-MD5: our server accepts the Perl client, and the Perl client accepts our rspauth', async () => {
    const mech = createDigestMd5Server({
      hostname: 'mx.example.com',
      realm: 'example.com',
      lookup: async (u) => (u === 'info.example.com' ? { password: 'userpassword' } : undefined),
    });
    const challenge = challengeOf(await mech.next(undefined)).toString('base64');
    const response = Buffer.from(perl('digest-client', 'info.example.com', 'userpassword', 'mx.example.com', challenge), 'base64');
    const rspauth = challengeOf(await mech.next(response));
    expect(perl('digest-client', 'info.example.com', 'userpassword', 'mx.example.com', challenge, rspauth.toString('base64'))).toBe('ok');
    expect(await mech.next(Buffer.alloc(0))).toEqual({ kind: 'done', identity: { authcid: 'info.example.com' } });
  });

  it('DIGEST-MD5: the Perl server accepts our client and sends the rspauth we expect', () => {
    const challenge = Buffer.from(perl('digest-server', 'info.example.com', 'userpassword', 'mx.example.com'), 'base64');
    const out = digestMd5ClientResponse({ user: 'info.example.com', password: 'userpassword', challenge, digestUri: 'smtp/mx.example.com' });
    const verdict = perl('digest-server', 'info.example.com', 'userpassword', 'mx.example.com', out.response.toString('base64'));
    expect(verdict).toBe(`ok rspauth=${out.expectedRspauth}`);
  });

  it('DIGEST-MD5: the Perl server refuses our client with a wrong password', () => {
    const challenge = Buffer.from(perl('digest-server', 'info.example.com', 'userpassword', 'mx.example.com'), 'base64');
    const out = digestMd5ClientResponse({ user: 'info.example.com', password: 'wrong', challenge, digestUri: 'smtp/mx.example.com' });
    expect(perl('digest-server', 'info.example.com', 'userpassword', 'mx.example.com', out.response.toString('base64'))).toMatch(/^error: Incorrect response/);
  });
});
