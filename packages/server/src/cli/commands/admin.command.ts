/** `coffer admin …`: user management and storage checks, run against the same data as the server. */
import { Command } from 'commander';
import { CofferError } from '@coffer/protocol/errors.ts';
import { randomBytes } from 'node:crypto';
import type { Coffer } from '../../app.ts';
import { addConfigFlags, configFromFlags, STORAGE_KEYS } from '../config-flags.ts';
import { readSecret } from '../read-secret.ts';

async function withCoffer<T>(opts: Record<string, unknown>, fn: (c: Coffer) => Promise<T>): Promise<T> {
  const { createCoffer } = await import('../../app.ts'); // loaded on use: the client's verbs share this program
  const coffer = await createCoffer(configFromFlags(opts));
  try {
    return await fn(coffer);
  } finally {
    await coffer.close();
  }
}

function sub(name: string, description: string): Command {
  return addConfigFlags(new Command(name).description(description), STORAGE_KEYS);
}

async function passwordFrom(opts: { password?: string }, prompt: string): Promise<{ password: string; generated: boolean }> {
  if (opts.password) return { password: opts.password, generated: false };
  if (process.stdin.isTTY) return { password: await readSecret(prompt), generated: false };
  return { password: randomBytes(12).toString('base64url'), generated: true };
}

export function adminCommand(): Command {
  const admin = new Command('admin').description('Administer users and storage');

  admin.addCommand(sub('create-user', 'Create a user (asks for a password, or generates one when not on a terminal)')
    .argument('<username>').option('--password <password>', 'the password (prefer the prompt: flags land in shell history)')
    .option('--email <email>').option('--admin', 'make this user an administrator').option('--quota <bytes>', 'storage quota in bytes (0 = unlimited)')
    .action(async (username: string, opts) => {
      const { password, generated } = await passwordFrom(opts, `Password for ${username}: `);
      await withCoffer(opts, async (c) => {
        const u = await c.services.users.create({ username, password, email: opts.email, isAdmin: !!opts.admin, quotaBytes: opts.quota !== undefined ? Number(opts.quota) : undefined });
        process.stdout.write(`created user ${u.username}${u.is_admin ? ' (admin)' : ''}\n`);
        if (generated) process.stdout.write(`generated password: ${password}\n`);
      });
    }));

  admin.addCommand(sub('reset-password', 'Set a new password for a user').argument('<username>').option('--password <password>')
    .action(async (username: string, opts) => {
      const { password, generated } = await passwordFrom(opts, `New password for ${username}: `);
      await withCoffer(opts, async (c) => {
        const user = await c.services.users.findByUsername(username);
        if (!user) throw new CofferError('NOT_FOUND', 'No such user.');
        await c.services.users.setPassword(user.id, password);
        const signedOut = await c.services.sessions.revokeAll(user.id, 'password reset by an administrator');
        await c.services.audit.record({ userId: user.id, type: 'password.reset', detail: { by: 'admin command', sessionsSignedOut: signedOut.length } });
        process.stdout.write(`password of ${user.username} changed; ${signedOut.length} session(s) signed out\n`);
        if (generated) process.stdout.write(`generated password: ${password}\n`);
      });
    }));

  admin.addCommand(sub('set-quota', 'Set a user\'s storage quota in bytes (0 = unlimited)').argument('<username>').argument('<bytes>')
    .action(async (username: string, bytes: string, opts) => {
      await withCoffer(opts, async (c) => {
        await c.services.users.setQuota(username, Number(bytes));
        process.stdout.write(`quota of ${username} set to ${bytes} bytes\n`);
      });
    }));

  admin.addCommand(sub('list-users', 'List users with their storage use').option('--json', 'machine-readable output')
    .action(async (opts) => {
      await withCoffer(opts, async (c) => {
        const users = await c.services.users.list();
        if (opts.json) {
          process.stdout.write(JSON.stringify(users.map((u) => ({ username: u.username, email: u.email, admin: u.is_admin === 1, usedBytes: u.used_bytes, quotaBytes: u.quota_bytes }))) + '\n');
          return;
        }
        for (const u of users) process.stdout.write(`${u.username}\t${u.is_admin ? 'admin' : 'user'}\t${u.used_bytes} bytes used\t${u.quota_bytes ? `${u.quota_bytes} quota` : 'no quota'}\n`);
      });
    }));

  admin.addCommand(sub('audit', 'Show a user\'s security events, newest first').argument('<username>')
    .option('--limit <n>', 'how many events', '50').option('--json', 'machine-readable output')
    .action(async (username: string, opts) => {
      await withCoffer(opts, async (c) => {
        const { events } = await c.services.audit.listForUsername(username, Math.max(1, Math.min(1000, Number(opts.limit) || 50)));
        if (opts.json) {
          process.stdout.write(JSON.stringify(events) + '\n');
          return;
        }
        for (const e of events) process.stdout.write(`${new Date(e.at).toISOString()}\t${e.type}\t${e.ip ?? '-'}\t${e.deviceId ?? '-'}\t${e.detail ? JSON.stringify(e.detail) : ''}\n`);
      });
    }));

  admin.addCommand(sub('sign-out', 'Sign a user out of every device and session').argument('<username>')
    .action(async (username: string, opts) => {
      await withCoffer(opts, async (c) => {
        const user = await c.services.users.findByUsername(username);
        if (!user) throw new CofferError('NOT_FOUND', 'No such user.');
        const signedOut = await c.services.sessions.revokeAll(user.id, 'signed out by an administrator');
        await c.services.audit.record({ userId: user.id, type: 'session.revoked', detail: { by: 'admin command', sessionsSignedOut: signedOut.length } });
        process.stdout.write(`${signedOut.length} session(s) of ${user.username} signed out\n`);
      });
    }));

  admin.addCommand(sub('check', 'Verify that metadata and stored chunks agree; exit 1 on any error')
    .option('--deep', 're-read every chunk and verify its SHA-256').option('--json', 'machine-readable output')
    .action(async (opts) => {
      const report = await withCoffer(opts, (c) => c.services.check.check({ deep: !!opts.deep }));
      const errors = report.problems.filter((p) => p.severity === 'error');
      if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
      else {
        process.stdout.write(`${report.users} users, ${report.items} items, ${report.versions} versions, ${report.chunks} chunks, ${report.blobs} blobs\n`);
        for (const p of report.problems) process.stdout.write(`${p.severity}: ${p.kind}: ${p.detail}\n`);
        process.stdout.write(errors.length ? `${errors.length} error(s) found\n` : 'storage is consistent\n');
      }
      process.exitCode = errors.length ? 1 : 0;
    }));

  admin.addCommand(sub('gc', 'Run maintenance now: purge old trash and versions, expire uploads, collect unreferenced chunks, compact packs')
    .option('--grace <seconds>', 'collect only unreferenced chunks older than this (default: the gc-grace setting)')
    .option('--sweep-orphans-now', 'also remove unrecorded blobs younger than 15 minutes, and packs compaction emptied less than an hour ago: ONLY when no server is running (a live upload may own them, a download read them)')
    .action(async (opts) => {
      const graceMs = opts.grace !== undefined ? Number(opts.grace) * 1000 : undefined;
      const now = opts.sweepOrphansNow ? 0 : undefined;
      const report = await withCoffer(opts, (c) => c.services.maintenance.runAll({ graceMs, orphanGraceMs: now, retiredGraceMs: now }));
      process.stdout.write(JSON.stringify(report) + '\n');
    }));

  return admin;
}
