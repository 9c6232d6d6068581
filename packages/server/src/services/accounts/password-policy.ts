/**
 * What a password must be: argon2id-hashed, at least MIN_PASSWORD_LENGTH
 * characters, and not one of the ~49,000 most common passwords (the list
 * bundled with zxcvbn-ts, from leaked-password corpora), compared without
 * case. NIST 800-63B asks for exactly this instead of composition rules.
 */
import { hash, verify } from '@node-rs/argon2';
import { dictionary } from '@zxcvbn-ts/language-common';
import { CofferError } from '@coffer/protocol';

export const MIN_PASSWORD_LENGTH = 10;
// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
const ARGON2_ID = 2; // Algorithm.Argon2id (a const enum, which type stripping cannot read)
export const ARGON2 = { algorithm: ARGON2_ID, memoryCost: 19456, timeCost: 2, parallelism: 1 };
const MAX_PASSWORD_LENGTH = 1024;

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2);
}
export function verifyPassword(stored: string, password: string): Promise<boolean> {
  return verify(stored, password).catch(() => false);
}

let common: Set<string> | undefined;
function commonPasswords(): Set<string> {
  common ??= new Set((dictionary['passwords-common'] as string[]).map((p) => p.toLowerCase()));
  return common;
}

/** Throws WEAK_PASSWORD, saying why, unless the password is acceptable for this user. */
export function checkPassword(password: unknown, username?: string): asserts password is string {
  if (typeof password !== 'string' || [...password].length < MIN_PASSWORD_LENGTH) {
    throw new CofferError('WEAK_PASSWORD', `A password needs at least ${MIN_PASSWORD_LENGTH} characters.`);
  }
  if (password.length > MAX_PASSWORD_LENGTH) throw new CofferError('WEAK_PASSWORD', `A password has at most ${MAX_PASSWORD_LENGTH} characters.`);
  const lower = password.normalize('NFC').toLowerCase();
  if (commonPasswords().has(lower)) throw new CofferError('WEAK_PASSWORD', 'This password is on the list of commonly used passwords; choose another.');
  if (username && lower.includes(username.toLowerCase()) && lower.length - username.length < 6) {
    throw new CofferError('WEAK_PASSWORD', 'The password is too close to the username.');
  }
}
