/**
 * The peer programs come from Debian: when `which` cannot find one, run
 * `apt-get update` once and `apt-get install -y` the missing packages
 * (the bench runs as root on throwaway machines).
 */
import { hasCommand, run } from './proc.ts';

const NEEDED: readonly { command: string; packages: readonly string[] }[] = [
  { command: 'curl', packages: ['curl'] },
  { command: 'rclone', packages: ['rclone'] },
  { command: 'nginx', packages: ['nginx-light', 'nginx'] },
];

export async function ensureTools(log: (msg: string) => void): Promise<void> {
  const missing = NEEDED.filter((t) => !hasCommand(t.command));
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`installing from Debian: ${missing.map((m) => m.command).join(', ')}`);
  const update = await run('apt-get', ['update', '-q'], { timeoutMs: 300_000, env });
  if (update.code !== 0) throw new Error(`apt-get update failed:\n${update.stderr.slice(-2000)}`);
  for (const tool of missing) {
    let lastErr = '';
    for (const pkg of tool.packages) {
      const res = await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', pkg], { timeoutMs: 600_000, env });
      if (res.code === 0 && hasCommand(tool.command)) {
        lastErr = '';
        break;
      }
      lastErr = res.stderr.slice(-2000);
    }
    if (lastErr || !hasCommand(tool.command)) throw new Error(`could not install ${tool.command}:\n${lastErr}`);
  }
}
