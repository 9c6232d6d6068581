/**
 * Accounts: an owner with a drive root, a password hashed with argon2id
 * (see accounts/password-policy.ts), an optional e-mail address for
 * password resets and notices, and a quota. Sign-in and sessions live in
 * accounts/session.service.ts.
 */
import { CofferError } from '@coffer/protocol';
import { newId } from '../db/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { itemRepository } from '../repositories/item.repository.ts';
import { userRepository, type UserRow } from '../repositories/user.repository.ts';
import type { ServiceDeps } from './context.ts';
import { checkPassword, hashPassword } from './accounts/password-policy.ts';

const USERNAME_RE = /^[a-z0-9][a-z0-9._-]{1,62}$/;
// Deliberately plain: one @, no spaces, controls, format characters or lone surrogates (stored as U+FFFD otherwise), a dot in the domain.
// Whether it works is proven by mail, not by regex.
const EMAIL_RE = /^[^\s@\p{Cc}\p{Cf}\p{Cs}]{1,64}@[^\s@\p{Cc}\p{Cf}\p{Cs}]+\.[^\s@\p{Cc}\p{Cf}\p{Cs}]+$/u;

export function normalizeUsername(username: string): string {
  return String(username).normalize('NFC').toLowerCase();
}

export function normalizeEmail(email: string): string {
  const e = email.normalize('NFC').trim().toLowerCase();
  if (e.length > 254 || !EMAIL_RE.test(e)) throw new CofferError('VALIDATION_FAILED', 'That is not an e-mail address.', { field: 'email' });
  return e;
}

export class UserService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock'>;
  private readonly defaultQuotaBytes: number;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock'>, defaultQuotaBytes: number) {
    this.deps = deps;
    this.defaultQuotaBytes = defaultQuotaBytes;
  }

  async create(input: { username: string; password: string; email?: string | null; isAdmin?: boolean; quotaBytes?: number }): Promise<UserRow> {
    const username = normalizeUsername(input.username);
    if (!USERNAME_RE.test(username)) {
      throw new CofferError('VALIDATION_FAILED', 'A username is 2-63 characters: lower-case letters, digits, ".", "_" or "-", starting with a letter or digit.', { field: 'username' });
    }
    const email = input.email ? normalizeEmail(input.email) : null;
    checkPassword(input.password, username);
    const now = this.deps.clock.now();
    const user: UserRow = {
      id: newId(), username, email, password_hash: await hashPassword(input.password),
      is_admin: input.isAdmin ? 1 : 0, quota_bytes: input.quotaBytes ?? this.defaultQuotaBytes, used_bytes: 0,
      root_id: newId(), created_at: now, change_seq: 0, changes_pruned_through: 0,
      totp_secret: null, totp_pending_secret: null, totp_last_step: null, password_changed_at: now,
    };
    try {
      await this.deps.db.transaction().execute(async (trx) => {
        if (email && (await userRepository.findByEmail(trx, email))) throw new CofferError('USER_EXISTS');
        await userRepository.insert(trx, user);
        await itemRepository.insert(trx, {
          id: user.root_id, owner_id: user.id, parent_id: null, name: '', kind: 'folder', size: 0, content_hash: null,
          version_id: null, rev: 1, created_at: now, modified_at: now, trashed_at: null, trash_batch: null,
        });
      });
    } catch (e) {
      if (isUniqueViolation(e)) throw new CofferError('USER_EXISTS', undefined, { username });
      throw e;
    }
    return user;
  }

  /** Sets a new password (an admin's reset, or the accounts services after their own checks). */
  async setPassword(userId: string, password: string): Promise<void> {
    const user = await userRepository.findById(this.deps.db, userId);
    if (!user) throw new CofferError('NOT_FOUND', 'No such user.');
    checkPassword(password, user.username);
    await userRepository.setPasswordHash(this.deps.db, user.id, await hashPassword(password), this.deps.clock.now());
  }

  async setQuota(username: string, quotaBytes: number): Promise<void> {
    const user = await this.findByUsername(username);
    if (!user) throw new CofferError('NOT_FOUND', 'No such user.');
    await userRepository.setQuota(this.deps.db, user.id, quotaBytes);
  }

  list(): Promise<UserRow[]> {
    return userRepository.list(this.deps.db);
  }

  findById(id: string): Promise<UserRow | undefined> {
    return userRepository.findById(this.deps.db, id);
  }

  findByUsername(username: string): Promise<UserRow | undefined> {
    return userRepository.findByUsername(this.deps.db, normalizeUsername(username));
  }

  /** A user by username or e-mail address, as typed at sign-in or "forgot password". */
  async findByLogin(login: string): Promise<UserRow | undefined> {
    const l = normalizeUsername(login).trim();
    if (l.includes('@')) return userRepository.findByEmail(this.deps.db, l);
    return userRepository.findByUsername(this.deps.db, l);
  }
}
