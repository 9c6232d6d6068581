/**
 * Whether the sync folder's file system folds case (macOS and Windows by
 * default): there `Notes.txt` and `notes.txt` are one file, so the planner
 * must keep names that differ only in case apart (merge.ts renames one of
 * them, as a conflict copy) instead of letting one overwrite the other.
 *
 * Asked of the folder itself, never assumed from the platform: a case-
 * sensitive volume on a Mac, or a folder on a mounted share, says otherwise.
 * No write is needed: the root marker `.coffer-root` is always there, and on
 * a folding file system `.COFFER-ROOT` names that very file.
 */
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT_MARKER } from './ignore.ts';

export async function foldsCase(folder: string): Promise<boolean> {
  const [marker, folded] = await Promise.all([
    lstat(join(folder, ROOT_MARKER)).catch(() => null),
    lstat(join(folder, ROOT_MARKER.toUpperCase())).catch(() => null),
  ]);
  // No marker (the folder is missing or not set up yet): the walk reports that; nothing to fold.
  return marker !== null && folded !== null && marker.ino === folded.ino && marker.dev === folded.dev;
}
