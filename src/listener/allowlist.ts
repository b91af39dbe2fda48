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
