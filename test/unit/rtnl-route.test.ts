// The VIP-route codec (src/kernel/rtnl/routes.ts) on RTM_NEWROUTE payloads
// captured from the kernel's dump of table local in a scratch namespace after
// `ip addr add 198.18.0.1/32 dev d0` and `ip route add local 198.18.0.2/32
// dev d0 table local proto 245` (d0: ifindex 3).
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { PROTOCOL_SLBCTL, decodeLocalRoute, encodeLocalRoute } from '../../src/kernel/rtnl/routes';

/** rtmsg (inet, /32, table 255, proto 245, scope host, type local), RTA_TABLE 255, RTA_DST 198.18.0.2, RTA_OIF 3. */
const SLBCTL_ROUTE = Buffer.from('02200000fff5fe020000000008000f00ff00000008000100c61200020800040003000000', 'hex');
/** The kernel's route for the address: proto kernel, RTA_PREFSRC too. */
const KERNEL_ROUTE = Buffer.from('02200000ff02fe020000000008000f00ff00000008000100c612000108000700c61200010800040003000000', 'hex');

describe('rtnetlink VIP-route codec', () => {
  it("reads slbctl's route: its address, interface and protocol", () => {
    assert.deepEqual(decodeLocalRoute(SLBCTL_ROUTE), { index: 3, route: { address: '198.18.0.2', protocol: PROTOCOL_SLBCTL } });
  });

  it("skips the kernel's local route of an interface address (that is what ip addr shows)", () => {
    assert.equal(decodeLocalRoute(KERNEL_ROUTE), undefined);
  });

  it('skips a route of another table, type or prefix length', () => {
    const main = Buffer.from(SLBCTL_ROUTE);
    main.writeUInt32LE(254, 16);
    assert.equal(decodeLocalRoute(main), undefined);
    const unicast = Buffer.from(SLBCTL_ROUTE);
    unicast[7] = 1;
    assert.equal(decodeLocalRoute(unicast), undefined);
    const prefix = Buffer.from(SLBCTL_ROUTE);
    prefix[1] = 24;
    assert.equal(decodeLocalRoute(prefix), undefined);
  });

  it('encodes the request with the same header as the kernel dumps, and decodes back', () => {
    const request = encodeLocalRoute('198.18.0.2', 3);
    assert.deepEqual(request.subarray(0, 12), SLBCTL_ROUTE.subarray(0, 12));
    assert.deepEqual(decodeLocalRoute(request), decodeLocalRoute(SLBCTL_ROUTE));
  });
});
