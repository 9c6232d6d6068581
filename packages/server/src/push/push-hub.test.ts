import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PushHub, type PushSubscriber } from './push-hub.ts';

function recorder(): PushSubscriber & { seqs: number[]; closed: string[] } {
  const r = { seqs: [] as number[], closed: [] as string[], changed(seq: number) { r.seqs.push(seq); }, close(reason: string) { r.closed.push(reason); } };
  return r;
}

describe('PushHub', () => {
  it('tells subscribers of their own drive only, each new position once, never an older one', () => {
    const hub = new PushHub();
    const a = recorder();
    const b = recorder();
    hub.subscribe('alice', 'k1', 3, a);
    hub.subscribe('bob', 'k2', 0, b);
    hub.changed('alice', 3); // not past `since`
    hub.changed('alice', 5);
    hub.changed('alice', 5); // the bus echo of a local delivery
    hub.changed('alice', 4); // arrived late
    hub.changed('alice', 6);
    assert.deepEqual(a.seqs, [5, 6]);
    assert.deepEqual(b.seqs, []);
  });

  it('closes every channel of a revoked credential, and refuses it afterwards; other credentials stay', () => {
    const hub = new PushHub();
    const x1 = recorder();
    const x2 = recorder();
    const y = recorder();
    hub.subscribe('alice', 'x', 0, x1);
    hub.subscribe('alice', 'x', 0, x2);
    hub.subscribe('alice', 'y', 0, y);
    hub.revoked({ credentialKey: 'x' });
    assert.deepEqual([x1.closed, x2.closed, y.closed], [['revoked'], ['revoked'], []]);
    assert.equal(hub.size, 1);
    hub.changed('alice', 1);
    assert.deepEqual([x1.seqs, y.seqs], [[], [1]]);
    // Authenticated just before the revocation, subscribing just after: refused.
    const late = recorder();
    assert.equal(hub.subscribe('alice', 'x', 0, late), null);
    assert.deepEqual(late.closed, ['revoked']);
  });

  it('a user-wide revocation closes all of the user\'s channels but does not block new sign-ins', () => {
    const hub = new PushHub();
    const a = recorder();
    hub.subscribe('alice', 'x', 0, a);
    hub.revoked({ userId: 'alice' });
    assert.deepEqual(a.closed, ['revoked']);
    assert.notEqual(hub.subscribe('alice', 'z', 0, recorder()), null);
  });

  it('unsubscribe stops delivery; closeAll ends everything and refuses new channels', () => {
    const hub = new PushHub();
    const a = recorder();
    const b = recorder();
    hub.subscribe('alice', 'x', 0, a)!.unsubscribe();
    hub.subscribe('alice', 'y', 0, b);
    hub.changed('alice', 1);
    assert.deepEqual([a.seqs, b.seqs], [[], [1]]);
    assert.deepEqual(hub.owners(), ['alice']);
    assert.deepEqual(hub.credentialKeys(), ['y']);
    hub.closeAll();
    assert.deepEqual(b.closed, ['shutdown']);
    assert.equal(hub.size, 0);
    const c = recorder();
    assert.equal(hub.subscribe('alice', 'y', 0, c), null);
    assert.deepEqual(c.closed, ['shutdown']);
  });
});
