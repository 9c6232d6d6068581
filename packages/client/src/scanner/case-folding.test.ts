/**
 * The case-folding probe on real folders. This machine's file systems are all
 * case-sensitive (its kernel has no casefold support or vfat, and Debian has
 * no case-insensitive FUSE file system), so a folding one is stood in for by
 * the one thing the probe looks at: `.COFFER-ROOT` naming the marker's own
 * inode, a hard link, which is what a folding file system's lookup returns.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { link, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { foldsCase } from './case-folding.ts';
import { ROOT_MARKER } from './ignore.ts';

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-case-'));
  await writeFile(join(dir, ROOT_MARKER), '');
  return dir;
}

describe('foldsCase', () => {
  it('is false on a case-sensitive folder, and writes nothing there', async () => {
    const dir = await folder();
    try {
      assert.equal(await foldsCase(dir), false);
      assert.deepEqual(await readdir(dir), [ROOT_MARKER]);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('is false when a different file happens to be called .COFFER-ROOT', async () => {
    const dir = await folder();
    try {
      await writeFile(join(dir, ROOT_MARKER.toUpperCase()), 'not the marker');
      assert.equal(await foldsCase(dir), false);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('is true when the upper-case name reaches the marker itself', async () => {
    const dir = await folder();
    try {
      await link(join(dir, ROOT_MARKER), join(dir, ROOT_MARKER.toUpperCase()));
      assert.equal(await foldsCase(dir), true);
    } finally {
      await rm(dir, { recursive: true });
    }
  });

  it('is false for a folder that is missing or has no marker', async () => {
    assert.equal(await foldsCase(join(tmpdir(), 'coffer-no-such-folder-' + process.pid)), false);
    const dir = await mkdtemp(join(tmpdir(), 'coffer-case-'));
    try {
      assert.equal(await foldsCase(dir), false);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});
