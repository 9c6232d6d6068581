/** Error answers become ApiErrors with the server's code; which failures are worth repeating. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, errorFromResponse, isRetryable, networkError } from './api-error.ts';

const answer = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(typeof body === 'string' ? body : JSON.stringify(body), { status, headers });

describe('ApiError', () => {
  it('is built from the server\'s error body', async () => {
    const e = await errorFromResponse(answer(412, { error: { code: 'VERSION_CONFLICT', message: 'changed', requestId: 'r1', details: { currentEtag: '"v2"' } } }));
    assert.ok(e instanceof ApiError);
    assert.deepEqual([e.code, e.status, e.message, e.requestId, e.details], ['VERSION_CONFLICT', 412, 'changed', 'r1', { currentEtag: '"v2"' }]);
  });

  it('names a body that is not the server\'s (a proxy page) by its status', async () => {
    const e = await errorFromResponse(answer(502, '<html>Bad gateway</html>'));
    assert.equal(e.code, 'HTTP_502');
    assert.equal(e.status, 502);
  });

  it('reads how long to wait from details.retryAfterSeconds or Retry-After', async () => {
    assert.equal((await errorFromResponse(answer(429, { error: { code: 'TOO_MANY_ATTEMPTS', message: 'm', details: { retryAfterSeconds: 4 } } }))).retryAfterMs, 4000);
    assert.equal((await errorFromResponse(answer(503, { error: { code: 'SHUTTING_DOWN', message: 'm' } }, { 'retry-after': '3' }))).retryAfterMs, 3000);
  });

  it('turns a failed fetch into NETWORK (status 0), marking a connection that was never made', () => {
    const reset = networkError(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }), 'GET /x');
    assert.deepEqual([reset.code, reset.status, reset.details?.notSent], ['NETWORK', 0, undefined]);
    const refused = networkError(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }), 'GET /x');
    assert.equal(refused.details?.notSent, true);
  });

  it('isRetryable: no answer, 503, 408, 429 with a wait; 500 only when safe to repeat; never a refusal', () => {
    const e = (status: number, code = `HTTP_${status}`, retryAfterMs?: number) => new ApiError({ code, status, retryAfterMs });
    const net = networkError(new Error('boom'), 'x');
    assert.equal(isRetryable(net), true);
    assert.equal(isRetryable(net, { idempotent: false }), false);
    assert.equal(isRetryable(e(503)), true);
    assert.equal(isRetryable(e(408)), true);
    assert.equal(isRetryable(e(429, 'RATE_LIMITED')), false);
    assert.equal(isRetryable(e(429, 'RATE_LIMITED', 1000)), true);
    assert.equal(isRetryable(e(500)), true);
    assert.equal(isRetryable(e(500), { idempotent: false }), false);
    for (const s of [400, 401, 403, 404, 409, 410, 412, 507]) assert.equal(isRetryable(e(s)), false, String(s));
    assert.equal(isRetryable(new Error('plain')), false);
  });
});
