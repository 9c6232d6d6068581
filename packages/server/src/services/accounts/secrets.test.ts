/** Secrets handed to clients: format, entropy, what is stored, CSRF derivation, recovery codes. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { csrfTokenFor, hashSecret, newRecoveryCode, newSecret, normalizeRecoveryCode, safeEqual } from './secrets.ts';

describe('secrets', () => {
  it('are a prefix and 256 random bits, base64url; only their SHA-256 is stored', () => {
    const s = newSecret('cfa');
    assert.match(s, /^cfa_[A-Za-z0-9_-]{43}$/);
    assert.notEqual(newSecret('cfa'), s);
    assert.equal(hashSecret(s), createHash('sha256').update(s).digest('hex'));
    assert.ok(!hashSecret(s).includes(s.slice(4)));
  });
  it('derive the CSRF token from the cookie, distinct per session', () => {
    const a = newSecret('cfs');
    const b = newSecret('cfs');
    assert.equal(csrfTokenFor(a), csrfTokenFor(a));
    assert.notEqual(csrfTokenFor(a), csrfTokenFor(b));
    assert.notEqual(csrfTokenFor(a), a);
    assert.notEqual(csrfTokenFor(a), hashSecret(a), 'the token is not the stored hash of the cookie');
  });
  it('compare in constant time and never equal across lengths', () => {
    assert.equal(safeEqual('abc', 'abc'), true);
    assert.equal(safeEqual('abc', 'abd'), false);
    assert.equal(safeEqual('abc', 'abcd'), false);
  });
  it('recovery codes: xxxx-xxxx-xxxx without look-alike characters, compared without case, dashes or spaces', () => {
    const codes = Array.from({ length: 200 }, newRecoveryCode);
    for (const c of codes) assert.match(c, /^[a-hj-km-np-z2-9]{4}-[a-hj-km-np-z2-9]{4}-[a-hj-km-np-z2-9]{4}$/);
    assert.equal(new Set(codes).size, codes.length);
    assert.equal(normalizeRecoveryCode('K7PQ 2mxe-RT9W'), normalizeRecoveryCode('k7pq-2mxe-rt9w'));
    assert.equal(normalizeRecoveryCode('k7pq-2mxe-rt9w'), 'k7pq2mxert9w');
  });
});
