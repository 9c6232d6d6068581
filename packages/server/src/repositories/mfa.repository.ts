/** Second-factor state: TOTP steps used, recovery codes, and sign-ins waiting for their second factor. */
import type { Selectable } from 'kysely';
import type { LoginChallengesTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';

export type LoginChallengeRow = Selectable<LoginChallengesTable>;

export const mfaRepository = {
  /** Records a TOTP step as used; false if it (or a later one) already was: the code is a replay. */
  async useTotpStep(db: Executor, userId: string, step: number): Promise<boolean> {
    const r = await db.updateTable('users').set({ totp_last_step: step }).where('id', '=', userId)
      .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)])).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async replaceRecoveryCodes(db: Executor, userId: string, rows: { id: string; code_hash: string }[], now: number): Promise<void> {
    await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
    if (rows.length) await db.insertInto('recovery_codes').values(rows.map((r) => ({ ...r, user_id: userId, created_at: now, used_at: null }))).execute();
  },
  /** Spends a recovery code; false if there is no such unused code. */
  async useRecoveryCode(db: Executor, userId: string, codeHash: string, now: number): Promise<boolean> {
    const r = await db.updateTable('recovery_codes').set({ used_at: now })
      .where('user_id', '=', userId).where('code_hash', '=', codeHash).where('used_at', 'is', null).executeTakeFirst();
    return r.numUpdatedRows > 0n;
  },
  async unusedRecoveryCodes(db: Executor, userId: string): Promise<number> {
    const r = await db.selectFrom('recovery_codes').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow();
    return Number(r.n);
  },
  async insertChallenge(db: Executor, row: LoginChallengeRow): Promise<void> {
    await db.insertInto('login_challenges').values(row).execute();
  },
  async findChallenge(db: Executor, hash: string): Promise<LoginChallengeRow | undefined> {
    return db.selectFrom('login_challenges').selectAll().where('hash', '=', hash).executeTakeFirst();
  },
  /** Takes a challenge for good; false if another request took it first. */
  async takeChallenge(db: Executor, hash: string): Promise<boolean> {
    const r = await db.deleteFrom('login_challenges').where('hash', '=', hash).executeTakeFirst();
    return r.numDeletedRows > 0n;
  },
  async pruneChallenges(db: Executor, now: number): Promise<void> {
    await db.deleteFrom('login_challenges').where('expires_at', '<', now).execute();
  },
};
