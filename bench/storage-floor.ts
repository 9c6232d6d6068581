/**
 * What this machine's disk and CPU allow for one durable 1 GiB upload (not a test,
 * not part of `npm run bench`): the same bytes written the ways a server could
 * store them, each timed in one run, so the 1 GiB PUT row can be read against
 * its floor.
 *
 *   node bench/storage-floor.ts [--size-mib N] [--runs N] [--dir DIR]
 *
 * Ways (each run does all of them, in a rotating order, on a fresh folder):
 *   - one file, no fsync: what `rclone serve webdav` does with an upload;
 *   - one file, fsync at the end: the least a durable store can do;
 *   - chunk files as Coffer's local store writes them: the data cut by the
 *     FastCDC chunker (~3,400 chunks per GiB), each written to a temp file,
 *     fsynced, renamed into one of 256 shard folders and the folder fsynced,
 *     4 chunks in flight (the upload's limit); and the same without the fsyncs;
 *   - pack files of 32 MiB, each fsynced, then their folder.
 * Plus, in memory: SHA-256 and the chunker's boundary search over the same bytes
 * (event-loop work every upload does whatever the storage).
 * Times are medians; CPU is this process's user + system time (fsyncs run on
 * libuv's threads and count here). On this VM the first write to fresh disk
 * blocks is several times slower than a rewrite of blocks just freed, so the
 * spread between runs is large: compare ways within a run.
 */
import { randomFillSync, createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cutAll } from '../packages/protocol/src/chunker.ts';

const MiB = 1024 * 1024;
const { values } = parseArgs({ options: { 'size-mib': { type: 'string', default: '1024' }, runs: { type: 'string', default: '3' }, dir: { type: 'string' } } });
const size = Number(values['size-mib']) * MiB;
const runs = Number(values.runs);
const root = mkdtempSync(join(values.dir ?? tmpdir(), 'coffer-floor-'));
const IN_FLIGHT = 4;
const PACK = 32 * MiB;

const data = Buffer.allocUnsafe(size);
for (let off = 0; off < size; off += 64 * MiB) randomFillSync(data, off, Math.min(64 * MiB, size - off));
const cuts = cutAll(data);
const chunks = cuts.map((end, i) => data.subarray(i === 0 ? 0 : cuts[i - 1]!, end));

async function writeFile(path: string, parts: readonly Uint8Array[], sync: boolean): Promise<void> {
  const fh = await open(path, 'w');
  try {
    for (const p of parts) await fh.write(p);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
}

async function syncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try { await fh.sync(); } finally { await fh.close(); }
}

/** Coffer's local layout: temp file → fsync → rename into its shard → fsync the shard. */
async function chunkFiles(dir: string, sync: boolean): Promise<void> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  for (let s = 0; s < 256; s++) mkdirSync(join(dir, s.toString(16).padStart(2, '0')));
  let next = 0;
  const worker = async () => {
    while (next < chunks.length) {
      const i = next++;
      const tmp = join(dir, 'tmp', String(i));
      await writeFile(tmp, [chunks[i]!], sync);
      const shard = join(dir, (i % 256).toString(16).padStart(2, '0'));
      await rename(tmp, join(shard, String(i)));
      if (sync) await syncDir(shard);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

async function packFiles(dir: string): Promise<void> {
  mkdirSync(dir);
  const syncing: Promise<void>[] = [];
  for (let off = 0, n = 0; off < size; off += PACK, n++) {
    syncing.push(writeFile(join(dir, `pack-${n}`), [data.subarray(off, Math.min(size, off + PACK))], true));
    if (syncing.length >= IN_FLIGHT) await syncing.shift();
  }
  await Promise.all(syncing);
  await syncDir(dir);
}

const ways: Record<string, (dir: string) => Promise<void>> = {
  'one file, no fsync (rclone serve webdav)': (dir) => writeFile(dir, [data], false),
  'one file, fsync': (dir) => writeFile(dir, [data], true),
  [`${chunks.length} chunk files, fsync each + its folder (Coffer today)`]: (dir) => chunkFiles(dir, true),
  [`${chunks.length} chunk files, no fsync`]: (dir) => chunkFiles(dir, false),
  [`${Math.ceil(size / PACK)} pack files of 32 MiB, fsync each + folder`]: packFiles,
  'in memory: SHA-256': async () => { createHash('sha256').update(data).digest(); },
  'in memory: chunker boundaries (cutAll)': async () => { cutAll(data); },
};
const names = Object.keys(ways);
const samples = new Map<string, { wall: number; cpu: number }[]>(names.map((n) => [n, []]));

for (let r = 0; r < runs; r++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(k + r) % names.length]!;
    const dir = join(root, `r${r}-${k}`);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await ways[name]!(dir);
    const wall = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    samples.get(name)!.push({ wall, cpu: (cpu.user + cpu.system) / 1e6 });
    rmSync(dir, { recursive: true, force: true });
  }
}
rmSync(root, { recursive: true, force: true });

const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!;
console.log(`${values['size-mib']} MiB, ${chunks.length} chunks, ${runs} run(s), medians (min–max)`);
console.log('| way | wall s | CPU s |\n|---|---|---|');
for (const name of names) {
  const s = samples.get(name)!;
  const walls = s.map((x) => x.wall);
  console.log(`| ${name} | ${median([...walls]).toFixed(2)} (${Math.min(...walls).toFixed(2)}–${Math.max(...walls).toFixed(2)}) | ${median(s.map((x) => x.cpu)).toFixed(2)} |`);
}
