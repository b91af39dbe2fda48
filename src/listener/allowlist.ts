// CIDR matching for clients.allow, clients.relayWithoutAuth and trustedProxies, on Node's own BlockList.
import net from 'node:net';

export class AddressSet {
  private list = new net.BlockList();
  readonly empty: boolean;

  constructor(readonly cidrs: readonly string[]) {
    for (const c of cidrs) {
      const [addr, bits] = c.split('/');
      const family = net.isIPv6(addr) ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(addr, family);
      else this.list.addSubnet(addr, Number(bits), family);
    }
    this.empty = cidrs.length === 0;
  }

  has(address: string): boolean {
    const a = unmapV4(address);
    return this.list.check(a, net.isIPv6(a) ? 'ipv6' : 'ipv4');
  }
}

/** "::ffff:127.0.0.1" (a v4 client on a dual-stack socket) -> "127.0.0.1". */
export function unmapV4(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** The key an address is counted under: IPv4 as is, IPv6 by its /64 prefix. */
export function clientKey(rawAddress: string): string {
  // No ':' is an IPv4 address (the common case): skip the IPv6 regex, once per session.
  if (!rawAddress.includes(':')) return rawAddress;
  const address = unmapV4(rawAddress);
  if (!net.isIPv6(address)) return address;
  const [head, tail = ''] = address.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = address.includes('::') && tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
  const groups = [...left, ...Array(Math.max(0, 8 - left.length - right.length - (right.some((g) => g.includes('.')) ? 1 : 0))).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
