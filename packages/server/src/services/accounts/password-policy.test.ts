/** The password policy (length, common passwords, closeness to the username) and the cost of argon2id. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { CofferError } from '@coffer/protocol';
import { checkPassword, hashPassword, MIN_PASSWORD_LENGTH, verifyPassword } from './password-policy.ts';

const weak = (password: unknown, username?: string) =>
  assert.throws(() => checkPassword(password, username), (e: unknown) => e instanceof CofferError && e.code === 'WEAK_PASSWORD', String(password));

describe('checkPassword', () => {
  it('refuses short, common and username-like passwords, with the reason', () => {
    assert.equal(MIN_PASSWORD_LENGTH, 10);
    for (const p of ['', 'short', '123456789', 'ab€d€fgh€']) weak(p);
    for (const p of ['password123', 'qwertyuiop', 'QWERTYUIOP', 'Password123', '1234567890', 'iloveyou12']) weak(p);
    weak('christopher1', 'christopher');
    weak('x'.repeat(1025));
    weak(undefined);
    weak(12345678901);
    assert.throws(() => checkPassword('qwertyuiop'), /commonly used/);
    assert.throws(() => checkPassword('short'), /at least 10 characters/);
  });
  it('accepts long uncommon passwords, counting characters rather than UTF-16 units', () => {
    for (const p of ['correct-horse-battery-staple', 'a-brand-new-passphrase-42', 'Zürich-Bärenstark', '🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑']) checkPassword(p, 'alice');
    weak('🔑🔑🔑🔑🔑'); // 10 UTF-16 units, 5 characters
  });
});

describe('argon2id', () => {
  it('hashes with a salt and verifies; prints the time per verification (the cost of one sign-in)', async () => {
    const h1 = await hashPassword('correct-horse-battery-staple');
    const h2 = await hashPassword('correct-horse-battery-staple');
    assert.match(h1, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.notEqual(h1, h2, 'salted');
    assert.equal(await verifyPassword(h1, 'correct-horse-battery-staple'), true);
    assert.equal(await verifyPassword(h1, 'correct-horse-battery-stapl'), false);
    assert.equal(await verifyPassword('not a hash', 'x'), false, 'a broken hash verifies nothing and does not throw');
    const n = 10;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await verifyPassword(h1, 'correct-horse-battery-staple');
    const ms = (performance.now() - t0) / n;
    console.log(`argon2id (m=19 MiB, t=2, p=1) verification: ${ms.toFixed(1)} ms each, at most ${(1000 / ms).toFixed(0)} per second on one thread`);
  });
});
