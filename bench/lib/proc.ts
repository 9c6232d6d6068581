/**
 * Child processes and waiting, every wait bounded: run a command to
 * completion with a timeout, start a long-running server we own (and stop it
 * by the PID we started, never by name), find a free loopback port, and poll a
 * URL until it answers.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Fed to the child's stdin, then stdin is closed. */
  input?: string;
}

/**
 * Runs a command (no shell) and resolves when it exits; kills it (SIGKILL) if
 * it outlives `timeoutMs`. `seconds` is the wall time from spawn to exit.
 */
export function run(cmd: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        seconds: (performance.now() - t0) / 1000,
        timedOut,
      });
    });
    if (child.stdin) {
      child.stdin.on('error', () => {}); // the child may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** `sync`: flush dirty pages so one row's writeback does not land in the next row's time. */
export function syncDisks(): void {
  spawnSync('sync', [], { timeout: 120_000, stdio: 'ignore' });
}

/** True when `name` is on PATH. */
export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore', timeout: 5_000 }).status === 0;
}

/** A port the kernel just handed out on 127.0.0.1 (tiny race: it is free now, not reserved). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** A server process we started; its output goes to `logFile`. */
export interface Owned {
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code once the process has gone. */
  readonly exited: Promise<number | null>;
  hasExited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines of its log, for error messages. */
  logTail(lines?: number): string;
}

const live = new Set<ChildProcess>();

/** Starts a long-running process with stdout+stderr appended to `logFile`. */
export function startOwned(cmd: string, args: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): Owned {
  const fd = openSync(logFile, 'a');
  const child = spawn(cmd, args, { env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  const pid = child.pid;
  live.add(child);
  let gone = false;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      gone = true;
      live.delete(child);
      resolve(code);
    });
    child.once('error', () => {
      gone = true;
      live.delete(child);
      resolve(null);
    });
  });
  return {
    pid,
    logFile,
    exited,
    hasExited: () => gone,
    async stop(graceMs = 10_000) {
      if (gone) return;
      child.kill('SIGTERM');
      const t = sleep(graceMs).then(() => 'timeout' as const);
      if ((await Promise.race([exited, t])) === 'timeout') {
        child.kill('SIGKILL');
        await Promise.race([exited, sleep(5_000)]);
      }
    },
    logTail(lines = 15) {
      try {
        return readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '(no log)';
      }
    },
  };
}

/** Kills (SIGKILL) every process started by startOwned that is still running: the emergency exit path. */
export function killAllOwned(): void {
  for (const child of live) child.kill('SIGKILL');
}

/**
 * Polls `url` until `accept(status)` holds, the process dies, or `timeoutMs`
 * passes (then throws with the log tail).
 */
export async function waitForHttp(url: string, owner: Owned, timeoutMs: number, accept: (status: number) => boolean = (s) => s === 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (owner.hasExited()) throw new Error(`process ${owner.pid} exited before ${url} answered:\n${owner.logTail()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (accept(res.status)) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (last: ${last}):\n${owner.logTail()}`);
}
