/**
 * Names of conflict copies: `report (conflict from laptop 2026-11-24).docx`.
 * The extension stays last so the copy still opens with the right program;
 * a taken name gets a counter: `… 2026-11-24 2).docx`.
 */
const MAX_NAME_BYTES = 255;

export function splitExtension(name: string): { stem: string; ext: string } {
  const dot = name.lastIndexOf('.');
  // A leading dot is a hidden file, not an extension; a very long "extension" is part of the name.
  if (dot <= 0 || name.length - dot > 16) return { stem: name, ext: '' };
  return { stem: name.slice(0, dot), ext: name.slice(dot) };
}

export function conflictName(name: string, device: string, day: string, isTaken: (candidate: string) => boolean): string {
  const { stem, ext } = splitExtension(name);
  const who = device.replace(/[\\/:*?"<>|\p{Cc}]/gu, '-').slice(0, 40) || 'another device';
  for (let n = 1; n < 10_000; n++) {
    const suffix = ` (conflict from ${who} ${day}${n > 1 ? ` ${n}` : ''})`;
    const candidate = fitName(stem, suffix + ext);
    if (!isTaken(candidate)) return candidate;
  }
  throw new Error(`no free conflict name for ${name}`);
}

/** Shortens the stem so the whole name fits the server's 255-byte limit. */
function fitName(stem: string, tail: string): string {
  let s = stem;
  while (Buffer.byteLength(s + tail) > MAX_NAME_BYTES && s.length > 0) s = [...s].slice(0, -1).join('');
  return s + tail;
}
