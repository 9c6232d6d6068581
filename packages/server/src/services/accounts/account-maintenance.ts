/**
 * Housekeeping of the accounts tables, run with the other maintenance jobs:
 * credentials that can no longer authenticate, expired sign-in challenges
 * and reset links, device sign-in requests an hour past their expiry,
 * throttle counters nobody has tripped for a day, and audit events past a year.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';
import { auditRepository } from '../../repositories/audit.repository.ts';
import { mfaRepository } from '../../repositories/mfa.repository.ts';
import { deviceLoginRepository } from '../../repositories/device-login.repository.ts';
import { passwordResetRepository } from '../../repositories/password-reset.repository.ts';
import { throttleRepository } from '../../repositories/throttle.repository.ts';
import type { SessionService } from './session.service.ts';

const DAY = 86_400_000;
export const AUDIT_RETENTION_DAYS = 365;

export async function pruneAccounts(db: Kysely<Database>, sessions: SessionService, now: number): Promise<{ credentialsPruned: number; auditEventsPruned: number }> {
  const credentialsPruned = await sessions.prune();
  await mfaRepository.pruneChallenges(db, now);
  await passwordResetRepository.prune(db, now - DAY);
  // Kept an hour past expiry, so a client polling late still hears DEVICE_CODE_EXPIRED rather than INVALID_DEVICE_CODE.
  await deviceLoginRepository.prune(db, now - 3600_000);
  await throttleRepository.pruneIdleSince(db, now - DAY);
  const auditEventsPruned = await auditRepository.pruneBefore(db, now - AUDIT_RETENTION_DAYS * DAY);
  return { credentialsPruned, auditEventsPruned };
}
