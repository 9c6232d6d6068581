/**
 * Names the client never syncs: its own marker and temporary files, and
 * the litter operating systems and office programs leave in folders.
 */
export const ROOT_MARKER = '.coffer-root';
export const TEMP_PREFIX = '.coffer-';
/** A download in progress (transfer/local-executor.ts): `.coffer-dl-<random>` next to its target. */
export const DOWNLOAD_TEMP_PREFIX = `${TEMP_PREFIX}dl-`;

const OS_LITTER = new Set(['.DS_Store', 'Thumbs.db', 'desktop.ini', '.directory', '.Trash-1000', '$RECYCLE.BIN', 'System Volume Information']);

export function isIgnored(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) || OS_LITTER.has(name) || name.startsWith('~$') || name.startsWith('.~lock.');
}
