/** Row ids: UUIDv7, so ids made one after another sort one after another (index pages stay at the right edge). */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { newGeneration, newId } from './ids.ts';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

it('newId makes UUIDv7 ids that sort in the order they were made, each unique', () => {
  const before = Date.now();
  const ids = Array.from({ length: 5000 }, () => newId());
  const after = Date.now();
  for (const id of ids) assert.match(id, UUID_V7);
  assert.equal(new Set(ids).size, ids.length);
  // Byte order is what SQLite's and PostgreSQL's text indexes see (ids are lower-case hex).
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i - 1]! < ids[i]!, `${ids[i - 1]} then ${ids[i]}`);
  const ms = (id: string) => parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
  assert.ok(ms(ids[0]!) >= before, 'the leading 48 bits are the creation time');
  // Many ids within one millisecond may run the timestamp ahead by a few ms (RFC 9562's monotonic counter).
  assert.ok(ms(ids.at(-1)!) <= after + 50);
});

it('newGeneration starts with the time and ends in 48 random bits', () => {
  const g = newGeneration(1_700_000_000_000);
  assert.match(g, /^[0-9a-z]+-[0-9a-f]{12}$/);
  assert.equal(parseInt(g.split('-')[0]!, 36), 1_700_000_000_000);
  assert.notEqual(newGeneration(1), newGeneration(1));
});

it('newId keeps its random bits random: no two ids share them, across many refills of the pool', () => {
  const tails = new Set(Array.from({ length: 20_000 }, () => newId().slice(-12)));
  assert.equal(tails.size, 20_000);
});
