/** Stand-in API tokens (hashed). Replaced by sessions in the accounts issue. */
import type { Selectable } from 'kysely';
import type { ApiTokensTable } from '../db/schema.ts';
import type { Executor } from './executor.ts';
import type { UserRow } from './user.repository.ts';

export const tokenRepository = {
  async insert(db: Executor, row: Selectable<ApiTokensTable>): Promise<void> {
    await db.insertInto('api_tokens').values(row).execute();
  },
  async findUserByTokenHash(db: Executor, tokenHash: string): Promise<UserRow | undefined> {
    return db.selectFrom('api_tokens').innerJoin('users', 'users.id', 'api_tokens.user_id')
      .selectAll('users').where('api_tokens.token_hash', '=', tokenHash).executeTakeFirst();
  },
  async deleteByTokenHash(db: Executor, tokenHash: string): Promise<void> {
    await db.deleteFrom('api_tokens').where('token_hash', '=', tokenHash).execute();
  },
};
