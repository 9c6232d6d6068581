import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CofferError, ERRORS, isCofferError } from './errors.ts';

describe('error table', () => {
  it('gives every code a 4xx/5xx status and a human message', () => {
    for (const [code, e] of Object.entries(ERRORS)) {
      assert.match(code, /^[A-Z][A-Z_]+$/);
      assert.ok(e.status >= 400 && e.status < 600, code);
      assert.ok(e.message.length > 10 && e.message.endsWith('.'), code);
    }
  });
  it('carries code, status and safe details on thrown errors', () => {
    const e = new CofferError('QUOTA_EXCEEDED', undefined, { neededBytes: 5 });
    assert.ok(isCofferError(e));
    assert.equal(e.status, 507);
    assert.equal(e.message, ERRORS.QUOTA_EXCEEDED.message);
    assert.deepEqual(e.details, { neededBytes: 5 });
    assert.equal(isCofferError(new Error('x')), false);
  });
});
