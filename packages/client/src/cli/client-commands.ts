/** The sync client's verbs of the `coffer` command. */
import type { Command } from 'commander';
import { accountsCommand } from './commands/accounts.command.ts';
import { disconnectCommand } from './commands/disconnect.command.ts';
import { loginCommand } from './commands/login.command.ts';
import { statusCommand } from './commands/status.command.ts';
import { syncCommand } from './commands/sync.command.ts';

export function clientCommands(): Command[] {
  return [loginCommand(), accountsCommand(), syncCommand(), statusCommand(), disconnectCommand()];
}
