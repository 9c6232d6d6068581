/**
 * Tells when what a credential authenticates as may have changed, so the
 * session service can keep credentials it has checked in memory on SQLite
 * (services/accounts/credential-cache.ts) without ever trusting a stale one.
 *
 * The epoch is a number that moves whenever
 * - this connection writes (or is about to write) a table that a credential
 *   check reads: sessions, credentials, devices, or users — except an update
 *   that sets only the drive's counters, which every upload makes, or the
 *   activity write itself (ACTIVITY_WRITE: SessionService.touch, which
 *   updates the kept rows itself, see credential-cache.ts); a Kysely
 *   plugin sees every query, whoever wrote it (so no repository can forget to
 *   tell), and moves the epoch when a write is compiled and again when it has run;
 * - another connection committed anything (SQLite's `PRAGMA data_version`):
 *   an admin command in another process revoking sessions, say;
 * - it is asked while a transaction is open on the connection (data_version
 *   stays at the transaction's snapshot), so nothing is kept or trusted
 *   during one.
 *
 * PostgreSQL has none: other server processes commit there, and nothing
 * would tell this one before its next request. It checks every credential
 * in the database.
 */
import {
  AliasNode, ColumnNode, RawNode, sql, TableNode,
  type KyselyPlugin, type OperationNode, type UpdateQueryNode, type PluginTransformQueryArgs, type PluginTransformResultArgs, type QueryResult, type RootOperationNode, type UnknownRow,
} from 'kysely';
import type SQLite from 'better-sqlite3';

/** The tables a credential check reads (session.repository.ts findByCredential). */
const WATCHED = new Set(['sessions', 'credentials', 'devices', 'users']);
/** Columns of `users` that change with every write to a drive and that no credential check reads. */
const DRIVE_COUNTERS = new Set(['change_seq', 'used_bytes', 'changes_pruned_through']);
const ACTIVITY_MARK = '/* activity: credential-epoch.ts */';
/**
 * Marks (`.modifyEnd(ACTIVITY_WRITE)`) the one update that may set a session's or device's activity without moving
 * the epoch: SessionService.touch, once a minute per session. Were it to move the epoch, every active device would
 * empty the whole cache once a minute. Its writer brings the kept rows up to date itself (CredentialCache.touched),
 * so a kept row is never newer than the database. Only a marked update that sets nothing but last_seen_at and ip
 * is let through: any other write of those columns (one that moves last_seen_at back, say) still moves the epoch.
 */
export const ACTIVITY_WRITE = sql.raw(ACTIVITY_MARK);
const ACTIVITY_COLUMNS = new Set(['last_seen_at', 'ip']);
const UNWATCHED_COLUMNS: Record<string, { columns: ReadonlySet<string>; marked: boolean }> = {
  users: { columns: DRIVE_COUNTERS, marked: false },
  sessions: { columns: ACTIVITY_COLUMNS, marked: true },
  devices: { columns: ACTIVITY_COLUMNS, marked: true },
};

function isActivityWrite(node: UpdateQueryNode): boolean {
  return (node.endModifiers ?? []).some((m) => RawNode.is(m) && m.parameters.length === 0 && m.sqlFragments.join('') === ACTIVITY_MARK);
}

export class CredentialEpoch implements KyselyPlugin {
  #epoch = 0;
  #dataVersion: number | null = null;
  readonly #sqlite: SQLite.Database;
  readonly #dataVersionOf: SQLite.Statement<[], number>;
  /** Statements that may change what a credential check reads, from compilation until their result is back. */
  readonly #writes = new WeakSet<object>();

  constructor(sqlite: SQLite.Database) {
    this.#sqlite = sqlite;
    this.#dataVersionOf = sqlite.prepare<[], number>('PRAGMA data_version').pluck();
  }

  /** The current epoch: the same number twice means nothing a credential check reads has changed in between. */
  current(): number {
    // Inside a transaction (another request's, on this one connection) data_version stays at the transaction's
    // snapshot: nothing can be known then, so the epoch moves. (Ours begin IMMEDIATE, so no other process can
    // commit during one; the rule does not depend on that.)
    if (this.#sqlite.inTransaction) return ++this.#epoch;
    const v = this.#dataVersionOf.get()!;
    if (v !== this.#dataVersion) {
      this.#dataVersion = v;
      this.#epoch++;
    }
    return this.#epoch;
  }

  /**
   * Moves the epoch when a write is compiled and again when it has run: between the two it may be waiting for the
   * connection, and a credential read meanwhile (the old row) must not be kept as if nothing had happened since.
   */
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (mayChangeCredentials(args.node)) {
      this.#epoch++;
      this.#writes.add(args.queryId);
    }
    return args.node;
  }

  transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (this.#writes.has(args.queryId)) this.#epoch++;
    return Promise.resolve(args.result);
  }
}

function tableName(node: OperationNode | undefined): string | null {
  if (node && TableNode.is(node)) return node.table.identifier.name;
  if (node && AliasNode.is(node)) return tableName(node.node);
  return null;
}

/** Whether a statement may change what a credential check reads; anything it cannot tell is assumed to. */
export function mayChangeCredentials(node: RootOperationNode): boolean {
  const watched = (n: OperationNode | undefined) => {
    const t = tableName(n);
    return t === null || WATCHED.has(t);
  };
  switch (node.kind) {
    case 'SelectQueryNode':
      return false;
    case 'InsertQueryNode':
      return watched(node.into);
    case 'DeleteQueryNode':
      return node.from.froms.some(watched);
    case 'UpdateQueryNode': {
      if (!watched(node.table)) return false;
      const unwatched = UNWATCHED_COLUMNS[tableName(node.table) ?? ''];
      if (!unwatched || !node.updates?.length || (unwatched.marked && !isActivityWrite(node))) return true;
      return !node.updates.every((u) => ColumnNode.is(u.column) && unwatched.columns.has(u.column.column.name));
    }
    default:
      return true; // raw SQL, schema changes, merges: not looked into
  }
}
