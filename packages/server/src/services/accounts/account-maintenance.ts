/**
 * Housekeeping of the accounts tables, run with the other maintenance jobs:
 * credentials that can no longer authenticate, expired sign-in challenges
 * and reset links, throttle counters nobody has tripped for a day, and
 * audit events past a year.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.ts';
import { auditRepository } from '../../repositories/audit.repository.ts';
import { mfaRepository } from '../../repositories/mfa.repository.ts';
import { passwordResetRepository } from '../../repositories/password-reset.repository.ts';
import { throttleRepository } from '../../repositories/throttle.repository.ts';
import type { SessionService } from './session.service.ts';

const DAY = 86_400_000;
export const AUDIT_RETENTION_DAYS = 365;

export async function pruneAccounts(db: Kysely<Database>, sessions: SessionService, now: number): Promise<{ credentialsPruned: number; auditEventsPruned: number }> {
  const credentialsPruned = await sessions.prune();
  await mfaRepository.pruneChallenges(db, now);
  await passwordResetRepository.prune(db, now - DAY);
  await throttleRepository.pruneIdleSince(db, now - DAY);
  const auditEventsPruned = await auditRepository.pruneBefore(db, now - AUDIT_RETENTION_DAYS * DAY);
  return { credentialsPruned, auditEventsPruned };
}
