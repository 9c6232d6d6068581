/**
 * Debian packages the tests drive: chromium, for the pages the server
 * serves; GNOME Keyring and dbus-run-session, for the sync client's OS
 * keyring (a private session bus with the Secret Service; without
 * recommends, the daemon's secrets component is all there is, and enough).
 * `npm test` calls this first: a missing program is installed with
 * apt-get when running as root (as on CI machines); otherwise the tests that
 * need it skip and say why.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const NEEDED: readonly { path: string; packages: readonly string[] }[] = [
  { path: '/usr/bin/chromium', packages: ['chromium'] },
  { path: '/usr/bin/gnome-keyring-daemon', packages: ['gnome-keyring'] },
  { path: '/usr/bin/dbus-run-session', packages: ['dbus-daemon'] },
];

export function ensureSystemPackages(log: (msg: string) => void): void {
  const missing = NEEDED.filter((n) => !existsSync(n.path));
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    log(`not installing ${missing.flatMap((m) => m.packages).join(', ')} (needs root and apt-get): tests that need them will skip`);
    return;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`installing from Debian: ${missing.flatMap((m) => m.packages).join(', ')}`);
  const run = (args: string[]) => spawnSync('apt-get', args, { env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 900_000 });
  let r = run(['install', '-y', '-q', '--no-install-recommends', ...missing.flatMap((m) => m.packages)]);
  if (r.status !== 0) {
    run(['update', '-q']);
    r = run(['install', '-y', '-q', '--no-install-recommends', ...missing.flatMap((m) => m.packages)]);
  }
  if (r.status !== 0) log(`apt-get could not install them (tests that need them will skip): ${r.stderr?.toString().slice(-500)}`);
}
