/** Turns the option declarations into commander flags, and parsed flags back into a Config. */
import { Option, type Command } from 'commander';
import { OPTIONS, type OptionSpec } from '../config/options.ts';
import { loadConfig } from '../config/load-config.ts';
import type { Config } from '../config/options.ts';

const camel = (flag: string) => flag.replace(/^--/, '').replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

export function addConfigFlags(cmd: Command, only?: readonly string[]): Command {
  cmd.option('--config <file>', 'JSON config file with any of the settings below (env COFFER_CONFIG)');
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (only && !only.includes(spec.key)) continue;
    const shown = spec.secret || spec.default === null ? '' : ` (default: ${spec.default})`;
    const opt = new Option(`${spec.flag} <value>`, `${spec.help}${shown} [env ${spec.env}]`);
    cmd.addOption(opt);
  }
  return cmd;
}

export function configFromFlags(opts: Record<string, unknown>): Config {
  const flags: Record<string, unknown> = {};
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    const v = opts[camel(spec.flag)];
    if (v !== undefined) flags[spec.key] = v;
  }
  return loadConfig({ flags, configFile: opts.config as string | undefined });
}

/** Settings that choose where data lives: what admin commands need. */
export const STORAGE_KEYS = ['dataDir', 'databaseUrl', 's3Endpoint', 's3Bucket', 's3Region', 's3AccessKeyId', 's3SecretAccessKey', 's3TimeoutSeconds', 'defaultQuotaBytes',
  'trashRetentionDays', 'versionRetentionDays', 'changeRetentionDays', 'maxVersionsPerFile', 'gcGraceSeconds', 'logLevel'] as const;
