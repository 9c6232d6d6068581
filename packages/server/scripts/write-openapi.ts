/**
 * `npm run openapi`: writes the API description the server serves at
 * /api/openapi.json to docs/openapi.json, so that every change to the API
 * shows up in review. `npm run openapi -- --check` only compares and exits 1
 * when the checked-in file is stale.
 *
 * The app is built exactly as the server builds it (storage in a throwaway
 * folder, default settings, no environment, no config file), but never listens.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { createCoffer } from '../src/app.ts';
import { loadConfig } from '../src/config/load-config.ts';
import { buildHttpServer } from '../src/http/http-server.ts';

/** The checked-in copy, at the repository root. */
export const OPENAPI_FILE = resolve(import.meta.dirname, '../../../docs/openapi.json');

/** Pretty JSON with a trailing newline: the exact bytes of docs/openapi.json. */
export function formatOpenApi(doc: unknown): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Builds the HTTP app without a listener and returns its OpenAPI document. */
export async function buildOpenApiDocument(): Promise<unknown> {
  const dataDir = await mkdtemp(join(tmpdir(), 'coffer-openapi-'));
  try {
    const config = loadConfig({ flags: { dataDir, logLevel: 'silent' }, env: {} });
    const coffer = await createCoffer(config);
    try {
      const app = await buildHttpServer(coffer.services, { authenticate: async () => null }, config);
      try {
        await app.ready();
        return app.swagger();
      } finally {
        await app.close();
      }
    } finally {
      await coffer.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function main(args: string[]): Promise<number> {
  const text = formatOpenApi(await buildOpenApiDocument());
  const shown = relative(process.cwd(), OPENAPI_FILE) || OPENAPI_FILE;
  if (args.includes('--check')) {
    const current = await readFile(OPENAPI_FILE, 'utf8').catch(() => null);
    if (current === text) {
      process.stdout.write(`${shown} is up to date\n`);
      return 0;
    }
    process.stderr.write(`${shown} is ${current === null ? 'missing' : 'stale'}: run npm run openapi\n`);
    return 1;
  }
  await writeFile(OPENAPI_FILE, text);
  process.stdout.write(`wrote ${shown}\n`);
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
