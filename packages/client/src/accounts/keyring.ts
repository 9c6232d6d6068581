/**
 * The OS keyring — the Secret Service on Linux (GNOME Keyring, KWallet),
 * the macOS Keychain, the Windows Credential Manager — through
 * @napi-rs/keyring, run in a helper process (keyring-helper.ts) that is
 * killed when it does not answer in time.
 *
 * Why a process and not the module in this one: on Linux the module talks
 * D-Bus synchronously, and opening an entry blocks the calling thread until
 * the bus answers — forever when the session bus accepts connections but
 * never replies, seconds when the keyring daemon is stuck, and for as long
 * as an unlock prompt stays open. In a helper the worst case is a timeout
 * and a clear error; `coffer sync --watch` never freezes. The cost is one
 * Node start (tens of ms) per burst of operations: the helper serves one
 * request after another and ends after a few idle seconds.
 *
 * On Linux the entries are pinned to the Secret Service: the module would
 * otherwise fall back to the kernel keyring (keyutils), which forgets
 * everything at reboot — the device would be signed out without warning.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The service every Coffer entry is filed under; the entry's account name tells accounts apart. */
export const KEYRING_SERVICE = 'coffer';
/** How long the probe at sign-in may take before the keyring counts as unavailable. */
export const PROBE_TIMEOUT_MS = 5_000;
/**
 * How long one read, write or delete may take: long enough to answer an unlock prompt, short enough
 * that a renewal (a read and a write under the account's lock) ends before its lock counts as stale.
 */
export const KEYRING_TIMEOUT_MS = 20_000;

const HELPER = fileURLToPath(new URL('./keyring-helper.ts', import.meta.url));

export type KeyringRequest =
  | { op: 'get' | 'delete'; service: string; user: string }
  | { op: 'set'; service: string; user: string; secret: string }
  /** Write, read back and delete an entry of its own: whether the keyring works here, now. */
  | { op: 'probe'; service: string }
  /** The account names of every entry of the service (tests check nothing is left). */
  | { op: 'list'; service: string };

export type KeyringAnswer =
  | { ok: true; value?: string | null; deleted?: boolean; users?: string[] }
  | { ok: false; error: string };

export interface KeyringCallOptions {
  timeoutMs?: number;
  /** The environment the helper runs in (the D-Bus session address comes from it); default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** The keyring could not be used; `reason` says why, for people. */
export class KeyringFailure extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(`the OS keyring cannot be used: ${reason}`);
    this.name = 'KeyringFailure';
    this.reason = reason;
  }
}

/** Runs one operation in the helper process; rejects with KeyringFailure when the keyring refuses, fails or does not answer in time. */
export async function keyringCall(req: KeyringRequest, opts: KeyringCallOptions = {}): Promise<KeyringAnswer & { ok: true }> {
  const env: NodeJS.ProcessEnv = { ...(opts.env ?? process.env) };
  delete env.NODE_TEST_CONTEXT; // a helper is not a test file, even when a test starts it
  delete env.NODE_OPTIONS;
  const key = JSON.stringify(Object.entries(env).sort(([a], [b]) => (a < b ? -1 : 1)));
  let helper = helpers.get(key);
  if (!helper) helpers.set(key, helper = new Helper(env));
  const answer = await helper.call(req, opts.timeoutMs ?? KEYRING_TIMEOUT_MS);
  if (!answer.ok) throw new KeyringFailure(explain(answer.error, env));
  return answer;
}

/** Helpers by environment (in practice one: the process's own; tests use several). */
const helpers = new Map<string, Helper>();
/** A helper with nothing to do for this long ends (the next operation starts another). */
const HELPER_IDLE_MS = 3_000;

/**
 * One helper process, started on demand, asked one request at a time (a JSON line each way), killed
 * when an answer is late, ended when idle. It never keeps this process alive: its pipes are unref'd,
 * and it ends by itself when this process goes (its stdin closes).
 */
class Helper {
  private readonly env: NodeJS.ProcessEnv;
  private child: ChildProcess | null = null;
  private stderr = '';
  private pending = '';
  private waiting: ((line: string | null) => void) | null = null;
  private idle: NodeJS.Timeout | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(env: NodeJS.ProcessEnv) {
    this.env = env;
  }

  call(req: KeyringRequest, timeoutMs: number): Promise<KeyringAnswer> {
    const run = () => this.send(req, timeoutMs);
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => {});
    return result;
  }

  private send(req: KeyringRequest, timeoutMs: number): Promise<KeyringAnswer> {
    if (this.idle) clearTimeout(this.idle);
    const child = this.child ?? this.start();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        this.stop(true);
        reject(new KeyringFailure(`it did not answer within ${Math.round(timeoutMs / 100) / 10} s (is it locked, or waiting for you to unlock it?)`));
      }, timeoutMs);
      this.waiting = (line) => {
        clearTimeout(timer);
        this.waiting = null;
        this.idle = setTimeout(() => this.stop(false), HELPER_IDLE_MS).unref();
        if (line === null) {
          reject(new KeyringFailure(`the keyring helper ended without an answer: ${this.stderr.trim().split('\n').slice(-3).join(' ') || 'no output'}`));
          return;
        }
        try {
          resolve(JSON.parse(line) as KeyringAnswer);
        } catch {
          reject(new KeyringFailure(`the keyring helper answered something else: ${line.slice(0, 200)}`));
        }
      };
      child.stdin!.write(JSON.stringify(req) + '\n');
    });
  }

  private start(): ChildProcess {
    const child = spawn(process.execPath, [HELPER], { stdio: ['pipe', 'pipe', 'pipe'], env: this.env, windowsHide: true });
    this.child = child;
    this.pending = '';
    this.stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.pending += d;
      for (let i = this.pending.indexOf('\n'); i >= 0 && this.child === child; i = this.pending.indexOf('\n')) {
        const line = this.pending.slice(0, i);
        this.pending = this.pending.slice(i + 1);
        this.waiting?.(line);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.stderr = (this.stderr + d).slice(-2000); });
    child.stdin!.on('error', () => {}); // a helper that died: 'close' reports it
    const ended = (why: string) => {
      if (this.child !== child) return; // stopped on purpose
      this.child = null;
      if (why) this.stderr += ` (${why})`;
      this.waiting?.(null);
    };
    child.on('error', (e) => ended(`could not start: ${e.message}`));
    child.on('close', (code, signal) => ended(signal ?? `exit ${code}`));
    // Never what keeps this process running.
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
    return child;
  }

  /** Ends the helper: gracefully (its stdin closes) or at once. */
  private stop(kill: boolean): void {
    const child = this.child;
    this.child = null;
    if (!child) return;
    if (kill) child.kill('SIGKILL');
    else child.stdin!.end();
  }
}

/** Whether the keyring works here, now; never takes longer than `timeoutMs`. */
export async function probeKeyring(opts: KeyringCallOptions = {}): Promise<{ ok: true } | { ok: false; reason: string }> {
  try {
    await keyringCall({ op: 'probe', service: KEYRING_SERVICE }, { ...opts, timeoutMs: opts.timeoutMs ?? PROBE_TIMEOUT_MS });
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: e instanceof KeyringFailure ? e.reason : (e as Error).message };
  }
}

/** The module's messages, with the usual cause on Linux said plainly. */
function explain(error: string, env: NodeJS.ProcessEnv): string {
  if (process.platform === 'linux' && !env.DBUS_SESSION_BUS_ADDRESS && /DBUS_SESSION_BUS_ADDRESS|autolaunch/.test(error)) return 'no D-Bus session: DBUS_SESSION_BUS_ADDRESS is not set';
  return error;
}
