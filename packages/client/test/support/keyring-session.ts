/**
 * A real OS keyring for tests, apart from the user's own: a private D-Bus
 * session (dbus-run-session) with GNOME Keyring's Secret Service running
 * and unlocked, its files in a temporary HOME. Tests hand `env` to whatever
 * should see it (the client's keyring helpers, `coffer` processes); the
 * session ends when `close` is called, or when the test process dies (the
 * session lives as long as its stdin pipe stays open).
 *
 * Needs /usr/bin/dbus-run-session and /usr/bin/gnome-keyring-daemon
 * (Debian: dbus-daemon, gnome-keyring; `npm test` installs them as root).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TOOLS = ['/usr/bin/dbus-run-session', '/usr/bin/gnome-keyring-daemon'];

/** Why the keyring tests cannot run here, or null when they can. */
export function keyringUnavailableReason(): string | null {
  if (process.platform !== 'linux') return 'the keyring tests drive GNOME Keyring over D-Bus (Linux only)';
  const missing = TOOLS.filter((t) => !existsSync(t));
  return missing.length ? `no ${missing.join(' or ')} (Debian packages dbus-daemon and gnome-keyring; \`npm test\` installs them when run as root)` : null;
}

export interface KeyringSession {
  /** Variables that point a process at this session's keyring (DBUS_SESSION_BUS_ADDRESS). */
  env: Record<string, string>;
  close(): Promise<void>;
}

export async function startKeyringSession(timeoutMs = 15_000): Promise<KeyringSession> {
  const dir = await mkdtemp(join(tmpdir(), 'coffer-keyring-'));
  const home = join(dir, 'home');
  const run = join(dir, 'run');
  await mkdir(home);
  await mkdir(run);
  await chmod(run, 0o700);
  // The daemon's sockets and files in this session's own directories: a desktop keyring running for the user is never touched.
  const script = 'printf %s coffer-test | gnome-keyring-daemon --unlock --components=secrets >/dev/null || exit 3\n'
    + 'echo "BUS=$DBUS_SESSION_BUS_ADDRESS"\n'
    + 'exec cat >/dev/null';
  const child = spawn('/usr/bin/dbus-run-session', ['--', 'sh', '-c', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, XDG_RUNTIME_DIR: run, XDG_DATA_HOME: join(home, '.local', 'share'), LANG: 'C.UTF-8' },
  });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const bus = await new Promise<string>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => fail(`no session bus within ${timeoutMs} ms`), timeoutMs);
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${why}\n${err.slice(-1000)}`));
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^BUS=(.+)$/m.exec(out);
      if (m && !settled) {
        settled = true;
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('close', (code) => fail(`the keyring session ended early (exit ${code})`));
  });
  return {
    env: { DBUS_SESSION_BUS_ADDRESS: bus },
    async close() {
      child.stdin.end(); // cat ends, so does the session: its bus and keyring daemon go with it
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
