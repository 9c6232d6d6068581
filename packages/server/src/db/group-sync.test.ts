import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GroupSync } from './group-sync.ts';

describe('GroupSync', () => {
  it('resolves with nothing to sync before the WAL exists', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-gs-'));
    const g = new GroupSync(join(dir, 'db-wal'));
    await g.sync();
    await g.close();
  });

  it('coalesces concurrent callers into at most two fsyncs, and every caller waits for one that started after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'coffer-gs-'));
    const wal = join(dir, 'db-wal');
    writeFileSync(wal, 'x');
    const g = new GroupSync(wal);
    const order: string[] = [];
    const first = g.sync().then(() => order.push('first'));
    const rest = Array.from({ length: 20 }, (_, i) => g.sync().then(() => order.push(`r${i}`)));
    await Promise.all([first, ...rest]);
    assert.equal(order[0], 'first', 'a caller that joined a running fsync waits for the next one');
    assert.equal(order.length, 21);
    await g.close();
  });
});
