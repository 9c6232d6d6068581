/**
 * Name and path rules shared by server, client and web app.
 * Names are stored in Unicode NFC so that a Mac (which writes NFD) and a
 * Linux client see one file, not two. Names every major OS can hold are the
 * only ones accepted: a name Windows cannot store would make a sync client
 * on Windows fail forever on that file.
 */
import { CofferError } from './errors.ts';

export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4096;
export const MAX_DEPTH = 256;

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
// C0 controls, DEL, and characters Windows forbids in names.
const FORBIDDEN_CHARS = /[\u0000-\u001f\u007f<>:"/\\|?*]/;

export type NameProblem =
  | 'empty' | 'dot' | 'too-long' | 'forbidden-character' | 'windows-reserved' | 'trailing-dot-or-space';

/** Returns why a name is refused, or null when it is fine. Expects NFC input. */
export function nameProblem(name: string): NameProblem | null {
  if (name.length === 0) return 'empty';
  if (name === '.' || name === '..') return 'dot';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return 'too-long';
  if (FORBIDDEN_CHARS.test(name)) return 'forbidden-character';
  if (WINDOWS_RESERVED.test(name)) return 'windows-reserved';
  if (/[. ]$/.test(name)) return 'trailing-dot-or-space';
  return null;
}

const PROBLEM_TEXT: Record<NameProblem, string> = {
  'empty': 'A name cannot be empty.',
  'dot': 'The names "." and ".." are not allowed.',
  'too-long': `A name can be at most ${MAX_NAME_BYTES} bytes of UTF-8.`,
  'forbidden-character': 'A name cannot contain control characters or any of < > : " / \\ | ? *.',
  'windows-reserved': 'This name is reserved on Windows (CON, PRN, AUX, NUL, COM1-9, LPT1-9).',
  'trailing-dot-or-space': 'A name cannot end with a dot or a space (Windows cannot hold it).',
};

/** Normalizes a name to NFC and validates it; throws INVALID_NAME with the reason. */
export function normalizeName(raw: unknown): string {
  if (typeof raw !== 'string') throw new CofferError('INVALID_NAME', 'A name must be a string.');
  if (!raw.isWellFormed()) throw new CofferError('INVALID_NAME', 'A name must be well-formed Unicode.', { reason: 'malformed-unicode' });
  const name = raw.normalize('NFC');
  const problem = nameProblem(name);
  if (problem) throw new CofferError('INVALID_NAME', PROBLEM_TEXT[problem], { reason: problem, name });
  return name;
}

/** Splits a '/'-separated path into validated NFC names; '' and '/' mean the root. */
export function parsePath(raw: string): string[] {
  if (Buffer.byteLength(raw, 'utf8') > MAX_PATH_BYTES) throw new CofferError('PATH_TOO_LONG');
  const parts = raw.split('/').filter((p) => p.length > 0);
  if (parts.length > MAX_DEPTH) throw new CofferError('PATH_TOO_LONG', `A path can be at most ${MAX_DEPTH} levels deep.`);
  return parts.map(normalizeName);
}
