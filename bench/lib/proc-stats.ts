/**
 * Server-side cost from /proc: CPU seconds (utime+stime, plus those of live
 * and reaped children) and resident memory (VmRSS now, VmHWM peak).
 *
 * The peak is per row: before each row we write "5" to /proc/PID/clear_refs,
 * which resets VmHWM to the current RSS (Linux ≥ 4.0, needs permission on the
 * process). If that is refused, the peak is "since the process started" and
 * the sample says so.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { timeout: 5_000 }).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

const MiB = 1024 * 1024;

/** Fields of /proc/PID/stat after the "(comm)" field, which may contain spaces. */
function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Process ids of all live descendants of `pid`. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const child = Number(name);
    if (!Number.isInteger(child)) continue;
    const f = statFields(child);
    if (!f) continue;
    const ppid = Number(f[1]); // field 4 overall
    const list = parent.get(ppid) ?? [];
    list.push(child);
    parent.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length && out.length < 10_000) {
    for (const c of parent.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/**
 * CPU seconds used so far by `pid` and its children: its own utime+stime, the
 * cutime+cstime of children it has reaped, and utime+stime of live descendants.
 */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  if (!f) return NaN;
  // After "(comm) ", index 0 is field 3 (state): utime=14, stime=15, cutime=16, cstime=17.
  let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  for (const d of descendants(pid)) {
    const g = statFields(d);
    if (g) ticks += Number(g[11]) + Number(g[12]);
  }
  return ticks / CLK_TCK;
}

/** VmRSS and VmHWM of `pid` in bytes. */
export function memory(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

/** Resets the peak-RSS counter of `pid`; false when the kernel refuses. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** CPU seconds all CPUs have spent busy since boot (everything but idle and iowait), from /proc/stat. */
function machineCpuSeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3] - f[4]) / CLK_TCK;
}

/** CPU seconds of this process plus its reaped children (the curl runs that finished), not live ones (the servers). */
function clientCpuSeconds(): number {
  const f = statFields(process.pid);
  return f ? (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK : NaN;
}

export interface ServerCost {
  cpuSeconds: number;
  /** CPU of the bench process and the clients it ran and reaped during the row. */
  clientCpuSeconds: number;
  /** Busy CPU of everything else on the machine during the row: other work, kernel threads (writeback, softirq). */
  otherCpuSeconds: number;
  /** RSS when the row started. */
  rssBeforeMiB: number;
  /** Peak RSS during the row (or since start when peakSinceStart). */
  peakRssMiB: number;
  peakSinceStart: boolean;
}

/** Starts measuring a server process; call the returned function when the row is done. */
export function beginCost(pid: number): () => ServerCost {
  const reset = resetPeak(pid);
  const cpu0 = cpuSeconds(pid);
  const client0 = clientCpuSeconds();
  const machine0 = machineCpuSeconds();
  const rss0 = memory(pid).rss;
  return () => {
    const server = cpuSeconds(pid) - cpu0;
    const client = clientCpuSeconds() - client0;
    return {
      cpuSeconds: server,
      clientCpuSeconds: client,
      otherCpuSeconds: Math.max(0, machineCpuSeconds() - machine0 - server - client), // tick sampling can make it dip below 0
      rssBeforeMiB: rss0 / MiB,
      peakRssMiB: memory(pid).hwm / MiB,
      peakSinceStart: !reset,
    };
  };
}

/** Fraction (0–1) of all CPUs busy over the next `ms` milliseconds, from /proc/stat: a check for other work on the machine. */
export async function machineBusy(ms = 1_000): Promise<number> {
  const read = () => {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0); // idle + iowait
    return { idle, total: f.slice(0, 8).reduce((a, b) => a + b, 0) }; // user..steal, without guest (already in user)
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return b.total > a.total ? 1 - (b.idle - a.idle) / (b.total - a.total) : 0;
}
