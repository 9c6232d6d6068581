/**
 * Stand-in authentication: exchange username + password for a bearer token.
 * Only the token's SHA-256 is stored. Sign-in answers are the same whether
 * or not the account exists, and take comparable time (a dummy hash is
 * verified for unknown users).
 */
import { createHash, randomBytes } from 'node:crypto';
import { CofferError } from '@coffer/protocol';
import { newId } from '../db/ids.ts';
import { tokenRepository } from '../repositories/token.repository.ts';
import { userRepository } from '../repositories/user.repository.ts';
import type { Principal, ServiceDeps } from './context.ts';
import { hashPassword, verifyPassword } from './user.service.ts';

let dummyHash: Promise<string> | undefined;

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class TokenAuthService {
  private readonly deps: Pick<ServiceDeps, 'db' | 'clock' | 'revocations'>;
  constructor(deps: Pick<ServiceDeps, 'db' | 'clock' | 'revocations'>) {
    this.deps = deps;
  }

  async issueToken(username: string, password: string, name = 'api'): Promise<string> {
    const user = await userRepository.findByUsername(this.deps.db, String(username).normalize('NFC').toLowerCase());
    dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    const ok = await verifyPassword(user?.password_hash ?? (await dummyHash), String(password));
    if (!user || !ok) throw new CofferError('UNAUTHENTICATED', 'Wrong username or password.');
    const token = `cft_${randomBytes(32).toString('base64url')}`;
    await tokenRepository.insert(this.deps.db, { id: newId(), user_id: user.id, token_hash: hashToken(token), name, created_at: this.deps.clock.now() });
    return token;
  }

  async authenticate(token: string): Promise<Principal | null> {
    const credentialKey = hashToken(token);
    const user = await tokenRepository.findUserByTokenHash(this.deps.db, credentialKey);
    if (!user) return null;
    return { userId: user.id, username: user.username, rootId: user.root_id, isAdmin: user.is_admin === 1, credentialKey };
  }

  async revoke(token: string): Promise<void> {
    const credentialKey = hashToken(token);
    await tokenRepository.deleteByTokenHash(this.deps.db, credentialKey);
    // After the delete committed: open push channels of this token close, on every process.
    this.deps.revocations?.revoked({ credentialKey });
  }

  /** Whether a credential key (a token hash) still authenticates; push channels re-check after missing revocations. */
  async isValid(credentialKey: string): Promise<boolean> {
    return (await tokenRepository.findUserByTokenHash(this.deps.db, credentialKey)) !== undefined;
  }
}
