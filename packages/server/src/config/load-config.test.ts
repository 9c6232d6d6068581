import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, redactConfig } from './load-config.ts';
import { OPTIONS } from './options.ts';

describe('config', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({ env: {} });
    assert.equal(c.port, 8080);
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.dataDir, './data');
    assert.equal(c.databaseUrl, null);
    assert.equal(c.s3Endpoint, null);
    assert.equal(c.trashRetentionDays, 30);
    assert.ok(Object.isFrozen(c));
  });

  it('takes file < environment < flag', () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-cfg-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ port: 1000, host: '0.0.0.0', dataDir: '/srv/file' }));
    const c = loadConfig({ configFile: file, env: { COFFER_PORT: '2000', COFFER_DATA_DIR: '/srv/env' }, flags: { port: '3000' } });
    assert.equal(c.port, 3000);
    assert.equal(c.dataDir, '/srv/env');
    assert.equal(c.host, '0.0.0.0');
  });

  it('refuses bad values and unknown keys with a clear message', () => {
    assert.throws(() => loadConfig({ env: { COFFER_PORT: 'eighty' } }), /COFFER_PORT: port must be a whole number/);
    assert.throws(() => loadConfig({ env: { COFFER_MAX_VERSIONS: 'maybe' } }), /maxVersionsPerFile must be a whole number/);
    const dir = mkdtempSync(join(tmpdir(), 'coffer-cfg-'));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ prot: 1 }));
    assert.throws(() => loadConfig({ configFile: join(dir, 'bad.json'), env: {} }), /unknown settings prot/);
    writeFileSync(join(dir, 'broken.json'), '{');
    assert.throws(() => loadConfig({ configFile: join(dir, 'broken.json'), env: {} }), /cannot read config file/);
  });

  it('refuses an integer above its maximum, naming the maximum', () => {
    assert.equal(loadConfig({ env: { COFFER_INLINE_MAX_BYTES: '65536' } }).inlineMaxBytes, 65536);
    assert.throws(() => loadConfig({ env: { COFFER_INLINE_MAX_BYTES: '65537' } }), /COFFER_INLINE_MAX_BYTES: inlineMaxBytes must be at most 65536, got 65537/);
  });

  it('declares every setting with a flag, an env var and help; masks secrets', () => {
    for (const o of OPTIONS) {
      assert.match(o.flag, /^--[a-z0-9-]+$/);
      assert.match(o.env, /^COFFER_[A-Z0-9_]+$/);
      assert.ok(o.help.length > 5);
    }
    const c = loadConfig({ env: { COFFER_S3_SECRET_ACCESS_KEY: 'hunter2', COFFER_DATABASE_URL: 'postgres://u:pw@h/db' } });
    const shown = JSON.stringify(redactConfig(c));
    assert.doesNotMatch(shown, /hunter2|pw@/);
  });
});
