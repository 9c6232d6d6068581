/**
 * Keyring operations, run by keyring.ts in a process of its own (see there
 * for why): reads KeyringRequests as JSON lines on stdin, writes one
 * KeyringAnswer line on stdout for each. Secrets travel only through the
 * pipes, never through arguments or the environment.
 */
import { Entry, findCredentials } from '@napi-rs/keyring';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { KeyringAnswer, KeyringRequest } from './keyring.ts';

/** Linux: the Secret Service only — never the kernel keyring, which forgets everything at reboot. Ignored elsewhere. */
const OPTIONS = { linux: { store: 'secret-service' as const } };

function run(req: KeyringRequest): KeyringAnswer {
  switch (req.op) {
    case 'get':
      return { ok: true, value: new Entry(req.service, req.user, OPTIONS).getPassword() ?? null };
    case 'set':
      new Entry(req.service, req.user, OPTIONS).setPassword(req.secret);
      return { ok: true };
    case 'delete':
      return { ok: true, deleted: new Entry(req.service, req.user, OPTIONS).deleteCredential() };
    case 'list':
      return { ok: true, users: findCredentials(req.service).map((c) => c.account).sort() };
    case 'probe': {
      // As large as real credentials (two tokens, a device key): a store that limits sizes fails here, not at sign-in.
      const secret = randomBytes(768).toString('base64');
      const entry = new Entry(req.service, `probe ${process.pid} ${randomBytes(4).toString('hex')}`, OPTIONS);
      entry.setPassword(secret);
      try {
        if (entry.getPassword() !== secret) return { ok: false, error: 'an entry written could not be read back' };
      } finally {
        entry.deleteCredential();
      }
      return { ok: true };
    }
  }
}

// One request per line, answered in order; the helper ends when its stdin does (its parent closed it, or died).
const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  let answer: KeyringAnswer;
  try {
    answer = run(JSON.parse(line) as KeyringRequest);
  } catch (e) {
    answer = { ok: false, error: (e as Error)?.message ?? String(e) };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
});
lines.on('close', () => process.exit(0));
