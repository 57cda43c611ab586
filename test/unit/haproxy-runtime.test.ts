// The parsers of what HAProxy prints: `show stat` CSV, the master CLI's
// `show proc`, and `haproxy -c` complaints. Samples are HAProxy 2.6's own
// output (trimmed to the columns that matter); nothing here may throw on a
// line it does not expect.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { parseShowProc, parseStat } from '../../src/backends/haproxy/runtime';
import { checkMessages } from '../../src/backends/haproxy/check';

const STAT = [
  '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,',
  'fe_http_10_0_0_1_80,FRONTEND,,,1,2,262130,7,700,1400,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,',
  'be_http_10_0_0_1_80,rs_10_0_1_1_80,0,0,1,1,,4,400,800,,0,,0,0,0,0,no check,1,1,0,,,12,,,1,3,1,,4,,2,',
  'be_http_10_0_0_1_80,rs_10_0_1_2_80,0,0,0,1,,3,300,600,,0,,0,0,0,0,MAINT,0,1,0,,,12,,,1,3,2,,3,,2,',
  'be_http_10_0_0_1_80,BACKEND,0,0,1,2,26213,7,700,1400,0,0,,0,0,0,0,UP,1,1,0,,0,12,0,,1,3,0,,7,,1,',
  'garbage line',
  ',,,',
  '',
].join('\n');

describe('haproxy output parsers', () => {
  it('show stat: typed rows, unknown lines skipped', () => {
    const rows = parseStat(STAT);
    assert.deepEqual(
      rows.map((r) => [r.pxname, r.svname, r.status, r.scur, r.stot, r.bin, r.bout, r.weight, r.type]),
      [
        ['fe_http_10_0_0_1_80', 'FRONTEND', 'OPEN', 1, 7, 700, 1400, undefined, 0],
        ['be_http_10_0_0_1_80', 'rs_10_0_1_1_80', 'no check', 1, 4, 400, 800, 1, 2],
        ['be_http_10_0_0_1_80', 'rs_10_0_1_2_80', 'MAINT', 0, 3, 300, 600, 0, 2],
        ['be_http_10_0_0_1_80', 'BACKEND', 'UP', 1, 7, 700, 1400, 1, 1],
      ],
    );
    assert.equal(rows[1]?.fields.lbtot, '4');
    assert.deepEqual(parseStat(''), []);
    assert.deepEqual(parseStat('Unknown command.\n'), []);
  });

  it('show proc: master, current and old workers', () => {
    const text = [
      '#<PID>          <type>          <reloads>       <uptime>        <version>',
      '6637            master          1 [failed: 0]   0d00h00m05s     2.6.12-1+deb12u4',
      '# workers',
      '6816            worker          0               0d00h00m01s     2.6.12-1+deb12u4',
      '# old workers',
      '6639            worker          1               0d00h00m09s     2.6.12-1+deb12u4',
      '# programs',
      'not a row',
      '',
    ].join('\n');
    assert.deepEqual(parseShowProc(text), [
      { pid: 6637, type: 'master', reloads: 1, old: false },
      { pid: 6816, type: 'worker', reloads: 0, old: false },
      { pid: 6639, type: 'worker', reloads: 1, old: true },
    ]);
  });

  it('haproxy -c: the ALERT lines, without the lead-in, the summary or the temporary path', () => {
    const out = [
      '[NOTICE]   (31304) : haproxy version is 2.6.12-1+deb12u4',
      "[ALERT]    (31304) : config : parsing [/tmp/x/haproxy.cfg:10] : unknown keyword 'bogus' in 'frontend' section",
      '[WARNING]  (31304) : config : something odd',
      '[ALERT]    (31304) : config : Error(s) found in configuration file : /tmp/x/haproxy.cfg',
      '[ALERT]    (31304) : config : Fatal errors found in configuration.',
    ].join('\n');
    assert.deepEqual(checkMessages(out, '/tmp/x/haproxy.cfg'), [
      "parsing [haproxy.cfg:10] : unknown keyword 'bogus' in 'frontend' section",
      'warning: something odd',
    ]);
  });
});
