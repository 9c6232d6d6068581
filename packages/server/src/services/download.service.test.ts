import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CofferError } from '@coffer/protocol';
import { parseRange } from './download.service.ts';
import { blobBirthTime } from '../db/ids.ts';
import { manifestHash, sha256Hex } from './chunk-writer.ts';

describe('parseRange', () => {
  it('reads single byte ranges as RFC 9110 does', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=-500', 100), { start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=50-5000', 100), { start: 50, end: 99 });
  });
  it('ignores what it may ignore: absent, multi-range, malformed, reversed', () => {
    for (const h of [undefined, '', 'bytes=0-1,5-6', 'items=0-1', 'bytes=x-y', 'bytes=9-3', 'bytes=-']) assert.equal(parseRange(h, 100), null, String(h));
  });
  it('refuses unsatisfiable ranges with INVALID_RANGE', () => {
    for (const h of ['bytes=100-', 'bytes=100-200', 'bytes=-0']) {
      assert.throws(() => parseRange(h, 100), (e: unknown) => e instanceof CofferError && e.code === 'INVALID_RANGE', h);
    }
    assert.throws(() => parseRange('bytes=0-', 0), (e: unknown) => e instanceof CofferError && e.code === 'INVALID_RANGE');
  });
});

describe('content hashes and blob keys', () => {
  it('hashes a file as SHA-256 over its chunk digests, in order', () => {
    const a = sha256Hex(Buffer.from('a'));
    const b = sha256Hex(Buffer.from('b'));
    assert.equal(manifestHash([]), sha256Hex(Buffer.alloc(0)));
    assert.equal(manifestHash([a, b]), sha256Hex(Buffer.concat([Buffer.from(a, 'hex'), Buffer.from(b, 'hex')])));
    assert.notEqual(manifestHash([a, b]), manifestHash([b, a]));
  });
  it('reads the birth time out of a chunk key, and nothing out of a foreign key', () => {
    const t = 1795630719535;
    assert.equal(blobBirthTime(`c/u/ab/${'ab'.repeat(32)}.${t.toString(36)}-0123456789ab`), t);
    assert.equal(blobBirthTime('c/u/ab/whatever'), null);
  });
});
