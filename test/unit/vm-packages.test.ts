// Which .deb files the Vagrant data-path bench copies into a VM: dpkg-query's
// lines parsed, dependency fields split, and the packages a VM lacks
// resolved against what this host has installed.
import { describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import { Installed, dependencyGroups, missingPackages, parseDpkgQuery } from '../../scripts/bench/vm-packages';

const pkg = (depends = '', provides = ''): Installed => ({ version: '1', depends, provides });

describe('vm packages', () => {
  it('parses dpkg-query lines, installed ones only', () => {
    const text = 'wrk\t4.1.0-3\t, libc6 (>= 2.14), libssl3\t\tii \nold\t1\t, \t\trc \n';
    const got = parseDpkgQuery(text);
    assert.deepEqual([...got.keys()], ['wrk']);
    assert.equal(got.get('wrk')?.version, '4.1.0-3');
  });

  it('splits a dependency field into groups of alternatives without versions or arch qualifiers', () => {
    assert.deepEqual(dependencyGroups(', libc6 (>= 2.14), libluajit-5.1-2 (>= 2.0) | libluajit2-5.1-2 (>= 2.1~), perl:any'), [
      ['libc6'],
      ['libluajit-5.1-2', 'libluajit2-5.1-2'],
      ['perl'],
    ]);
  });

  it('takes what the VM lacks, by the alternative the host installed, and skips what the VM has or provides', () => {
    const host = new Map<string, Installed>([
      ['wrk', pkg('libc6, libluajit-5.1-2 | libluajit2-5.1-2, libssl3')],
      ['libluajit2-5.1-2', pkg('libluajit2-5.1-common')],
      ['libluajit2-5.1-common', pkg()],
      ['iperf3', pkg('init-system-helpers, debconf (>= 0.5) | debconf-2.0, libiperf0')],
      ['libiperf0', pkg('libsctp1, libssl3')],
      ['libsctp1', pkg()],
      ['libc6', pkg()],
      ['libssl3', pkg()],
    ]);
    const vm = new Map<string, Installed>([
      ['libc6', pkg()],
      ['libssl3', pkg()],
      ['init-system-helpers', pkg()],
      ['cdebconf', pkg('', 'debconf-2.0')],
    ]);
    assert.deepEqual(missingPackages(['wrk', 'iperf3'], host, vm), [
      'wrk',
      'iperf3',
      'libluajit2-5.1-2',
      'libiperf0',
      'libluajit2-5.1-common',
      'libsctp1',
    ]);
    assert.deepEqual(missingPackages(['libssl3'], host, vm), []);
  });

  it('says which package the host lacks', () => {
    assert.throws(() => missingPackages(['nginx'], new Map(), new Map()), /nginx is not installed on this host/);
  });
});
