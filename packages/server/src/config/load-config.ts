/**
 * Builds the frozen Config from the option declarations:
 * default < config file (JSON, `--config` / COFFER_CONFIG) < environment < flags.
 */
import { readFileSync } from 'node:fs';
import { CofferError } from '@coffer/protocol/errors.ts';
import { OPTIONS, type Config, type OptionSpec } from './options.ts';

function coerce(spec: OptionSpec, raw: unknown, source: string): string | number | boolean | null {
  if (raw === null || raw === undefined || raw === '') return spec.default;
  if (spec.type === 'integer') {
    const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
    if (!Number.isSafeInteger(n) || n < 0) throw new CofferError('VALIDATION_FAILED', `${source}: ${spec.key} must be a whole number ≥ 0, got ${JSON.stringify(raw)}`);
    if (spec.max !== undefined && n > spec.max) throw new CofferError('VALIDATION_FAILED', `${source}: ${spec.key} must be at most ${spec.max}, got ${n}`);
    return n;
  }
  if (spec.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    const s = String(raw).toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) return true;
    if (['0', 'false', 'no', 'off'].includes(s)) return false;
    throw new CofferError('VALIDATION_FAILED', `${source}: ${spec.key} must be true or false, got ${JSON.stringify(raw)}`);
  }
  return String(raw);
}

export interface ConfigSources {
  /** Values from command-line flags, keyed by option key. */
  flags?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file; falls back to COFFER_CONFIG. */
  configFile?: string;
}

export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const file = sources.configFile ?? env.COFFER_CONFIG;
  let fromFile: Record<string, unknown> = {};
  if (file) {
    try {
      fromFile = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new CofferError('VALIDATION_FAILED', `cannot read config file ${file}: ${(e as Error).message}`);
    }
    const known = new Set<string>(OPTIONS.map((o) => o.key));
    const unknown = Object.keys(fromFile).filter((k) => !known.has(k));
    if (unknown.length) throw new CofferError('VALIDATION_FAILED', `config file ${file}: unknown settings ${unknown.join(', ')}`);
  }
  const out: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    let value = coerce(spec, fromFile[spec.key], `config file`);
    if (env[spec.env] !== undefined && env[spec.env] !== '') value = coerce(spec, env[spec.env], spec.env);
    const flag = sources.flags?.[spec.key];
    if (flag !== undefined) value = coerce(spec, flag, spec.flag);
    out[spec.key] = value;
  }
  return Object.freeze(out) as Config;
}

/** The config with secrets masked, for logs and `--print-config`. */
export function redactConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (spec.secret && out[spec.key]) out[spec.key] = '***';
  }
  return out;
}
