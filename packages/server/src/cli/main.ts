#!/usr/bin/env node
/**
 * The `coffer` command: the server's verbs (server, admin) and the sync client's (login, accounts, sync, status).
 * Expected failures print their message (no stack) and exit 1.
 */
import { Command } from 'commander';
import { isCofferError } from '@coffer/protocol';
import { serverCommand } from './commands/server.command.ts';
import { adminCommand } from './commands/admin.command.ts';
import { clientCommands } from '@coffer/client/cli/client-commands.ts';

const program = new Command('coffer').description('Coffer: a self-hosted cloud drive').showHelpAfterError();
program.addCommand(serverCommand());
program.addCommand(adminCommand());
for (const c of clientCommands()) program.addCommand(c);

program.parseAsync(process.argv).catch((e: unknown) => {
  if (isCofferError(e)) process.stderr.write(`error: ${e.message} (${e.code})\n`);
  else process.stderr.write(`error: ${(e as Error)?.message ?? e}\n`);
  process.exit(1);
});
