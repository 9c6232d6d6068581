/**
 * A real sync client for tests: a real folder in a temp directory, a real
 * SQLite index, the real API client signed in to a real server over HTTP,
 * and the real sync engine. Only the account bookkeeping of the CLI is
 * left out (test/e2e/cli.test.ts covers that).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { syncApiOf } from '../../src/accounts/open-account.ts';
import { SyncIndex } from '../../src/index/sync-index.ts';
import { ApiClient } from '../../src/remote/api-client.ts';
import { login } from '../../src/remote/auth.ts';
import { MemoryCredentialStore } from '../../src/remote/credentials.ts';
import { ROOT_MARKER } from '../../src/scanner/ignore.ts';
import { syncOnce, type SyncOptions, type SyncReport } from '../../src/sync/sync-engine.ts';

export interface TestClient {
  name: string;
  folder: string;
  api: ApiClient;
  index: SyncIndex;
  sync(opts?: Partial<SyncOptions>): Promise<SyncReport>;
  /** Every file and folder under the folder: "dir/" or "path=content" (text files), sorted; client files left out. */
  listing(): Promise<string[]>;
  write(path: string, content: string | Buffer): Promise<void>;
  read(path: string): Promise<string>;
  close(): Promise<void>;
}

export async function startClient(url: string, username: string, password: string, name: string): Promise<TestClient> {
  const dir = await mkdtemp(join(tmpdir(), `coffer-client-${name}-`));
  const folder = join(dir, 'Coffer');
  await mkdir(folder);
  const r = await login(url, { login: username, password, deviceName: name });
  if (r.status !== 'signed-in') throw new Error('test users have no second factor');
  const credentials = new MemoryCredentialStore(r.credentials);
  const api = new ApiClient({ baseUrl: url, credentials });
  const drive = await api.drive();
  await writeFile(join(folder, ROOT_MARKER), JSON.stringify({ rootId: drive.rootId }));
  const index = new SyncIndex(join(dir, 'index.sqlite'));
  const syncApi = syncApiOf(api);
  return {
    name, folder, api, index,
    sync: (opts = {}) => syncOnce(syncApi, index, { folder, deviceName: name, now: () => Date.parse('2026-11-25T12:00:00Z'), ...opts }),
    listing: () => listFolder(folder),
    async write(path, content) {
      await mkdir(join(folder, path, '..'), { recursive: true });
      await writeFile(join(folder, path), content);
    },
    read: (path) => readFile(join(folder, path), 'utf8'),
    async close() {
      index.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function listFolder(folder: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const name of await readdir(join(folder, rel))) {
      if (name.startsWith('.coffer-')) continue;
      const path = rel ? `${rel}/${name}` : name;
      if ((await stat(join(folder, path))).isDirectory()) {
        out.push(`${path}/`);
        await walk(path);
      } else out.push(`${path}=${await readFile(join(folder, path), 'utf8')}`);
    }
  };
  await walk('');
  return out.sort();
}
