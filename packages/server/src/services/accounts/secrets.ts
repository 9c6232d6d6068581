/**
 * Secrets handed to clients (session cookies, tokens, app passwords, reset
 * links, recovery codes). Each is 256 bits of randomness (recovery codes
 * fewer, and throttled), so the server stores only its SHA-256: a stolen
 * database holds nothing that signs anyone in.
 */
import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

export type SecretPrefix = 'cfs' | 'cfa' | 'cfr' | 'cfp' | 'cfk' | 'cfc' | 'cfw' | 'cfd';
// cfs_ cookie session · cfa_ access token · cfr_ refresh token · cfp_ app password
// cfk_ device key · cfc_ sign-in challenge · cfw_ password reset · cfd_ device login code

export function newSecret(prefix: SecretPrefix): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The CSRF token of a cookie session: derived from the cookie, so nothing more is stored, and useless without it. */
export function csrfTokenFor(cookieSecret: string): string {
  return createHash('sha256').update(`csrf|${cookieSecret}`).digest('base64url');
}

export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const RECOVERY_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'; // no 0/o, 1/l/i

/** A recovery code such as `k7pq-2mxe-rt9w`: 12 characters from 31, about 59 bits. */
export function newRecoveryCode(): string {
  let s = '';
  for (let i = 0; i < 12; i++) {
    s += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
    if (i === 3 || i === 7) s += '-';
  }
  return s;
}

/** Recovery codes are compared without dashes, spaces or case. */
export function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, '');
}
