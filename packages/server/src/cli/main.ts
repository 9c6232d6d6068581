#!/usr/bin/env node
/**
 * The `coffer` command: the server's verbs (server, admin) and the sync client's (login, accounts, sync, status).
 * Expected failures print their message (no stack) and exit 1.
 *
 * Start-up: Node's compile cache is turned on before anything else is loaded, so a run reuses the
 * type-stripped, compiled modules of the last one (stripping the types of every module was most of a
 * short command's CPU time); the rest is imported afterwards, hence the dynamic imports. Each verb loads
 * what it needs only when it runs.
 */
import { enableCompileCache } from 'node:module';

enableCompileCache?.();
// A reader that went away (`coffer status --json | head -c 100`) is no error of ours: stop quietly, as
// programs killed by SIGPIPE do, instead of crashing with an EPIPE stack. The work was crash-safe anyway.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
const [{ Command }, { isCofferError }, { serverCommand }, { adminCommand }, { clientCommands }] = await Promise.all([
  import('commander'),
  import('@coffer/protocol/errors.ts'),
  import('./commands/server.command.ts'),
  import('./commands/admin.command.ts'),
  import('@coffer/client/cli/client-commands.ts'),
]);

const program = new Command('coffer').description('Coffer: a self-hosted cloud drive').showHelpAfterError();
program.addCommand(serverCommand());
program.addCommand(adminCommand());
for (const c of clientCommands()) program.addCommand(c);

program.parseAsync(process.argv).catch((e: unknown) => {
  if (isCofferError(e)) process.stderr.write(`error: ${e.message} (${e.code})\n`);
  else process.stderr.write(`error: ${(e as Error)?.message ?? e}\n`);
  process.exit(1);
});
