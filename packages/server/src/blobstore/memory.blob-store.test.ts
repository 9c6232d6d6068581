import assert from 'node:assert/strict';
import { it } from 'node:test';
import { readAll, runBlobStoreConformance } from './blob-store.conformance.ts';
import { MemoryBlobStore } from './memory.blob-store.ts';

runBlobStoreConformance('memory', async () => ({ store: new MemoryBlobStore(), cleanup: async () => {} }), { packs: true });

it('memory: stores are independent of each other', async () => {
  const a = new MemoryBlobStore();
  const b = new MemoryBlobStore();
  await a.put('k', Buffer.from('a'));
  assert.equal(await b.stat('k'), null);
  assert.equal((await readAll(await a.get('k'))).toString(), 'a');
  assert.equal(a.capabilities.localFiles, false);
});
