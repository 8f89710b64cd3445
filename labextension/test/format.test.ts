// Unit tests of how numbers are shown.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import {
  formatBytes,
  formatDuration,
  formatPercent,
  formatSize,
  formatUptime,
  networkText,
  networkTitle,
  parseSize
} from '../src/format';

describe('formatting', () => {
  it('formats sizes in binary units', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1 KiB');
    assert.equal(formatBytes(512 * 1024 ** 2), '512 MiB');
    assert.equal(formatBytes(1.5 * 1024 ** 3), '1.5 GiB');
    assert.equal(formatBytes(50.25 * 1024 ** 2), '50.3 MiB');
    assert.equal(formatBytes(null), '-');
    assert.equal(formatBytes(-1), '-');
  });

  it('formats uptime and durations', () => {
    assert.equal(formatUptime(0), '0s');
    assert.equal(formatUptime(59.9), '59s');
    assert.equal(formatUptime(185), '3m 05s');
    assert.equal(formatUptime(2 * 3600 + 3 * 60 + 9), '2h 03m');
    assert.equal(formatUptime(86400 + 4 * 3600), '1d 04h');
    assert.equal(formatUptime(-5), '-');
    assert.equal(formatDuration(120), '120 ms');
    assert.equal(formatDuration(1500), '1.5 s');
    assert.equal(formatDuration(123000), '2m 03s');
    assert.equal(formatDuration(undefined), '-');
    assert.equal(formatPercent(12.345), '12.3%');
    assert.equal(formatPercent(null), '-');
  });
});

describe("sizes in the server's syntax", () => {
  it('parses what models.parse_size parses', () => {
    assert.equal(parseSize('512M'), 512 * 1024 ** 2);
    assert.equal(parseSize('1g'), 1024 ** 3);
    assert.equal(parseSize('2GiB'), 2 * 1024 ** 3);
    assert.equal(parseSize(' 1.5 G '), 1.5 * 1024 ** 3);
    assert.equal(parseSize('1048576'), 1048576);
    assert.equal(parseSize('lots'), null);
    assert.equal(parseSize('-1M'), null);
  });

  it('writes bytes back as a placeholder to type', () => {
    assert.equal(formatSize(1024 ** 3), '1G');
    assert.equal(formatSize(512 * 1024 ** 2), '512M');
    assert.equal(formatSize(1536 * 1024 ** 2), '1536M');
    assert.equal(formatSize(1000), '1000');
  });

  it("says a sandbox's network and its allow-list", () => {
    assert.equal(networkText({ network: false }), 'none');
    assert.equal(networkText({ network: true, egress: null }), 'yes');
    const egress = { allow: ['pypi.org', '*.pythonhosted.org'], deny: ['evil.example'] };
    assert.equal(networkText({ network: true, egress }), 'only pypi.org, *.pythonhosted.org; not evil.example');
    assert.equal(networkText({ network: true, egress: { allow: [], deny: [] } }), 'only nothing');
    assert.match(networkTitle({ network: true, egress }), /filtering proxy/);
  });
});
