import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";

/**
 * The SSRF guard: a webhook URL is written by an API client, but tally makes the request from inside the operator's
 * network. Unless private networks are allowed (WEBHOOK_ALLOW_PRIVATE_NETWORKS), tally refuses to connect to any
 * address in these ranges. The check runs at delivery time on the addresses DNS returned, and the connection is
 * made to exactly the address that was checked (send.ts passes a `lookup` that checks), so a name that resolves
 * to a public address when the endpoint is created and to 127.0.0.1 later is still refused.
 */
const BLOCKED = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8], // "this" network
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local, including the cloud metadata address 169.254.169.254
  ["172.16.0.0", 12],
  ["192.0.0.0", 24], // IETF protocol assignments (some metadata services live here)
  ["192.168.0.0", 16],
  ["198.18.0.0", 15], // benchmarking
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, and the broadcast address
] as const) {
  BLOCKED.addSubnet(network, prefix, "ipv4");
}
for (const [network, prefix] of [
  ["::", 128], // unspecified
  ["::1", 128], // loopback
  ["fc00::", 7], // unique local, including the fd00:ec2::254 metadata address
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
  ["64:ff9b::", 96], // NAT64: embeds an IPv4 address that may be private
] as const) {
  BLOCKED.addSubnet(network, prefix, "ipv6");
}

/** Why `address` may not be connected to, or undefined when it may. */
export function refusedAddress(address: string): string | undefined {
  const family = isIP(address);
  if (family === 0) return `${address} is not an IP address`;
  // An IPv4-mapped IPv6 address (::ffff:127.0.0.1) is the IPv4 address it maps.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return refusedAddress(mapped[1]!);
  if (BLOCKED.check(address, family === 4 ? "ipv4" : "ipv6")) {
    return `${address} is a loopback, private, link-local or metadata address (set WEBHOOK_ALLOW_PRIVATE_NETWORKS=true to allow it)`;
  }
  return undefined;
}

export class RefusedAddressError extends Error {
  constructor(reason: string) {
    super(`refused: ${reason}`);
    this.name = "RefusedAddressError";
  }
}

/**
 * Resolves `hostname` and returns the first address, after checking every address DNS returned: a name with one
 * private address among public ones is refused, because a retry might connect to that one.
 */
export async function resolveAllowed(hostname: string, allow_private_networks: boolean): Promise<{ address: string; family: 4 | 6 }> {
  const bare = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  const literal = isIP(bare);
  const addresses = literal !== 0 ? [{ address: bare, family: literal }] : await lookup(bare, { all: true, verbatim: true });
  if (addresses.length === 0) throw new Error(`${bare} does not resolve`);
  if (!allow_private_networks) {
    for (const { address } of addresses) {
      const reason = refusedAddress(address);
      if (reason !== undefined) throw new RefusedAddressError(reason);
    }
  }
  const first = addresses[0]!;
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}
