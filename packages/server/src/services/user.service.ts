/**
 * Accounts as far as the files API needs them: an owner with a drive root,
 * a password hashed with argon2id, and a quota. The full account and session
 * work (sign-in, devices, 2FA) replaces `TokenAuthService` in its own issue.
 */
import { hash, verify } from '@node-rs/argon2';
import { CofferError } from '@coffer/protocol';
import { newId } from '../db/ids.ts';
import { isUniqueViolation } from '../db/errors.ts';
import { itemRepository } from '../repositories/item.repository.ts';
import { userRepository, type UserRow } from '../repositories/user.repository.ts';
import type { ServiceDeps } from './context.ts';

export const MIN_PASSWORD_LENGTH = 10;
// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
const ARGON2_ID = 2; // Algorithm.Argon2id (a const enum, which type stripping cannot read)
const ARGON2 = { algorithm: ARGON2_ID, memoryCost: 19456, timeCost: 2, parallelism: 1 };

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2);
}
export function verifyPassword(stored: string, password: string): Promise<boolean> {
  return verify(stored, password).catch(() => false);
}

const USERNAME_RE = /^[a-z0-9][a-z0-9._-]{1,62}$/;

export class UserService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock'>;
  private readonly defaultQuotaBytes: number;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock'>, defaultQuotaBytes: number) {
    this.deps = deps;
    this.defaultQuotaBytes = defaultQuotaBytes;
  }

  async create(input: { username: string; password: string; email?: string; isAdmin?: boolean; quotaBytes?: number }): Promise<UserRow> {
    const username = input.username.normalize('NFC').toLowerCase();
    if (!USERNAME_RE.test(username)) {
      throw new CofferError('VALIDATION_FAILED', 'A username is 2-63 characters: lower-case letters, digits, ".", "_" or "-", starting with a letter or digit.');
    }
    checkPassword(input.password);
    const now = this.deps.clock.now();
    const user: UserRow = {
      id: newId(), username, email: input.email ?? null, password_hash: await hashPassword(input.password),
      is_admin: input.isAdmin ? 1 : 0, quota_bytes: input.quotaBytes ?? this.defaultQuotaBytes, used_bytes: 0,
      root_id: newId(), created_at: now, change_seq: 0, changes_pruned_through: 0,
    };
    try {
      await this.deps.db.transaction().execute(async (trx) => {
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

  async resetPassword(username: string, password: string): Promise<void> {
    checkPassword(password);
    const user = await userRepository.findByUsername(this.deps.db, username.toLowerCase());
    if (!user) throw new CofferError('NOT_FOUND', 'No such user.');
    await userRepository.setPasswordHash(this.deps.db, user.id, await hashPassword(password));
  }

  async setQuota(username: string, quotaBytes: number): Promise<void> {
    const user = await userRepository.findByUsername(this.deps.db, username.toLowerCase());
    if (!user) throw new CofferError('NOT_FOUND', 'No such user.');
    await userRepository.setQuota(this.deps.db, user.id, quotaBytes);
  }

  list(): Promise<UserRow[]> {
    return userRepository.list(this.deps.db);
  }

  findById(id: string): Promise<UserRow | undefined> {
    return userRepository.findById(this.deps.db, id);
  }
}

export function checkPassword(password: string): void {
  if (typeof password !== 'string' || [...password].length < MIN_PASSWORD_LENGTH) {
    throw new CofferError('WEAK_PASSWORD', `A password needs at least ${MIN_PASSWORD_LENGTH} characters.`);
  }
}
