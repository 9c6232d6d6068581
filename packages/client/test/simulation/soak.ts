/**
 * The simulation, many seeds:
 *
 *   node packages/client/test/simulation/soak.ts --seeds 5000 [--from N] [--steps 30]
 *   node packages/client/test/simulation/soak.ts --seed N [--trace] [--detail]   (replay one seed;
 *     --detail also prints each sync's plans and step outcomes)
 *   … --keep-going: run every seed, list the failing ones at the end
 *
 * Stops at the first failing seed, prints what happened and the command
 * that replays it exactly; exits 1. `npm run soak` runs thousands.
 */
import { rm } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { useRamDisk } from './ram-disk.ts';
import { runSeed, startSimServer, type SeedResult } from './runner.ts';
import { KNOWN_FAILING } from './known-failing.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1000' },
    from: { type: 'string', default: '1' },
    seed: { type: 'string' },
    steps: { type: 'string', default: '30' },
    trace: { type: 'boolean', default: false },
    detail: { type: 'boolean', default: false },
    'include-known': { type: 'boolean', default: false },
    'keep-going': { type: 'boolean', default: false },
  },
});

const steps = Number(values.steps);
const replayCommand = (seed: number) => `node packages/client/test/simulation/soak.ts --seed ${seed}${steps !== 30 ? ` --steps ${steps}` : ''} --trace`;

const ramDisk = useRamDisk();
const server = await startSimServer();
let exitCode = 0;
try {
  if (values.seed !== undefined) {
    const seed = Number(values.seed);
    const r = await runSeed(server, seed, { steps, trace: values.trace || values.detail ? (l) => console.log(l) : undefined, detail: values.detail });
    if (!values.trace && !values.detail) console.log(r.log.join('\n'));
    console.log(`\nseed ${seed}: ${r.ok ? 'ok' : 'FAILED'} in ${Math.round(r.ms)} ms, fingerprint ${r.fingerprint}`);
    if (!r.ok) {
      console.log(r.failure);
      exitCode = 1;
    }
  } else {
    const from = Number(values.from);
    const count = Number(values.seeds);
    const started = performance.now();
    const totals = { syncs: 0, syncsFailed: 0, crashes: 0, conflicts: 0, interference: 0, faults: 0, deletePauses: 0 };
    const actions: Record<string, number> = {};
    const faults: Record<string, number> = {};
    let done = 0;
    let skipped = 0;
    const failures: number[] = [];
    for (let seed = from; seed < from + count; seed++) {
      const known = KNOWN_FAILING.get(seed);
      if (known && !values['include-known']) {
        skipped++;
        continue;
      }
      const r: SeedResult = await runSeed(server, seed, { steps });
      done++;
      totals.syncs += r.stats.syncs;
      totals.syncsFailed += r.stats.syncsFailed;
      totals.crashes += r.stats.crashes;
      totals.conflicts += r.stats.conflicts;
      totals.interference += r.stats.interference;
      totals.deletePauses += r.stats.deletePauses;
      totals.faults += Object.values(r.stats.faults).reduce((s, n) => s + n, 0);
      for (const [k, n] of Object.entries(r.stats.actions)) actions[k] = (actions[k] ?? 0) + n;
      for (const [k, n] of Object.entries(r.stats.faults)) faults[k] = (faults[k] ?? 0) + n;
      if (!r.ok && values['keep-going']) {
        failures.push(seed);
        console.log(`seed ${seed} FAILED: ${r.failure!.split('\n').slice(0, 3).join(' | ').slice(0, 400)}`);
        exitCode = 1;
      } else if (!r.ok) {
        console.log(r.log.join('\n'));
        console.log(`\nseed ${seed} FAILED:\n${r.failure}\n\nreplay: ${replayCommand(seed)}`);
        exitCode = 1;
        break;
      }
      if (done % 50 === 0 || seed === from + count - 1) {
        const s = (performance.now() - started) / 1000;
        console.log(`${done} seeds ok (${from}…${seed}) in ${s.toFixed(0)} s, ${(done / s).toFixed(2)} seeds/s; ${JSON.stringify(totals)}`);
      }
    }
    console.log(`actions: ${JSON.stringify(actions)}\nfaults: ${JSON.stringify(faults)}`);
    if (failures.length) console.log(`${failures.length} failing seed(s): ${failures.join(' ')}`);
    if (skipped) console.log(`${skipped} known-failing seed(s) left out (--include-known runs them): ${[...KNOWN_FAILING.keys()].join(', ')}`);
  }
} finally {
  await server.close();
  if (ramDisk) await rm(ramDisk, { recursive: true, force: true });
}
process.exit(exitCode);
