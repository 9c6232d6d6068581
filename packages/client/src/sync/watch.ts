/**
 * Keeps an account in sync: the folder's file watcher (@parcel/watcher),
 * the server's push channel, and a slow poll as the fallback for both
 * trigger a run shortly after a change. Runs never overlap; changes during
 * a run trigger one more. Ends on Ctrl-C, or when the server says this
 * device was signed out (local files and pending changes stay as they are).
 */
import watcher from '@parcel/watcher';
import type { OpenedAccount } from '../accounts/open-account.ts';
import { TEMP_PREFIX } from '../scanner/ignore.ts';

const DEBOUNCE_MS = 400;
const POLL_MS = 60_000;

/** `o`: what watching needs of an opened account (its folder, and the API for the push channel). */
export async function watchAccount(o: { account: Pick<OpenedAccount['account'], 'folder'>; api: Pick<OpenedAccount['api'], 'events'> }, run: () => Promise<unknown>, log: (msg: string) => void, signal?: AbortSignal): Promise<string | null> {
  /** Why watching ended, when it was not the user stopping it (the caller exits non-zero then). */
  let reason: string | null = null;
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.once('SIGINT', onSigint);
  signal?.addEventListener('abort', () => stop.abort(), { once: true });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | null = null;
  let again = false;
  const trigger = () => {
    clearTimeout(timer);
    timer = setTimeout(kick, DEBOUNCE_MS);
  };
  const kick = () => {
    if (running) { again = true; return; }
    running = run().then(() => {}, (e: unknown) => {
      const code = (e as { code?: string }).code;
      log(`sync failed: ${(e as Error).message}`);
      if (code === 'SESSION_REVOKED' || code === 'SERVER_IDENTITY_CHANGED' || code === 'DEVICE_WIPE_REQUESTED' || code === 'DEVICE_WIPED') { reason = code; stop.abort(); }
    }).finally(() => {
      running = null;
      if (again && !stop.signal.aborted) { again = false; trigger(); }
    });
  };
  const sub = await watcher.subscribe(o.account.folder, (err, events) => {
    if (err) { log(`watcher: ${err.message}`); return; }
    if (events.some((e) => !e.path.split('/').some((s) => s.startsWith(TEMP_PREFIX)))) trigger();
  });
  const poll = setInterval(trigger, POLL_MS);
  const push = (async () => {
    while (!stop.signal.aborted) {
      try {
        for await (const ev of o.api.events(stop.signal)) if (ev.event === 'changed' || ev.event === 'ready') trigger(); // ready: changes made while disconnected
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code === 'SESSION_REVOKED') { log('this device was signed out of the account; local files and unsynced changes are kept'); reason = code; stop.abort(); break; }
        if (code === 'DEVICE_WIPE_REQUESTED') trigger(); // the next run carries the wipe out
      }
      if (!stop.signal.aborted) await new Promise((r) => setTimeout(r, 5_000));
    }
  })();
  log(`watching ${o.account.folder} (Ctrl-C to stop)`);
  await new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }));
  clearInterval(poll);
  clearTimeout(timer);
  process.off('SIGINT', onSigint);
  await sub.unsubscribe();
  await running;
  await push.catch(() => {});
  return reason;
}
