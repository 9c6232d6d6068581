/**
 * The few HTML pages the server itself serves until the web app exists:
 * the page a password reset mail links to (it reads the token from the URL
 * fragment, never sent to the server, so it stays out of logs and
 * referrers, and calls the public JSON API), and /device, where a user
 * approves a device sign-in (device-page.ts).
 */
import type { RoutePlugin } from './route-context.ts';
import { DEVICE_PAGE, DEVICE_PAGE_CSP } from './device-page.ts';

const RESET_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reset your Coffer password</title>
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}input,button{font:inherit;width:100%;padding:.5rem;margin:.25rem 0 1rem;box-sizing:border-box}#msg{font-weight:600}</style>
</head><body>
<h1>Choose a new password</h1>
<form id="f"><label>New password (at least 10 characters)<input id="p1" type="password" autocomplete="new-password" required minlength="10"></label>
<label>Once more<input id="p2" type="password" autocomplete="new-password" required minlength="10"></label>
<button>Set password</button></form>
<p id="msg" role="status"></p>
<script>
const token = new URLSearchParams(location.hash.slice(1)).get('token');
const msg = document.getElementById('msg');
if (!token) msg.textContent = 'This link is incomplete; open the link from the mail again.';
document.getElementById('f').addEventListener('submit', async (e) => {
  e.preventDefault();
  const password = document.getElementById('p1').value;
  if (password !== document.getElementById('p2').value) { msg.textContent = 'The two passwords differ.'; return; }
  const res = await fetch('/api/v1/auth/password/reset', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, password }) });
  if (res.status === 204) { msg.textContent = 'Your password is changed, and every device was signed out. Sign in again with the new password.'; e.target.remove(); return; }
  const body = await res.json().catch(() => null);
  msg.textContent = body?.error?.message ?? 'Something went wrong; try again.';
});
</script>
</body></html>
`;

export const pagesRoutes: RoutePlugin = (app) => {
  app.get('/reset-password', { config: { public: true }, schema: { hide: true } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').header('referrer-policy', 'no-referrer')
      .header('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'")
      .send(RESET_PAGE));

  app.get('/device', {
    config: { public: true },
    schema: { hide: true }, // the page reads ?code= itself; the server ignores the query
  }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-store').header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff').header('content-security-policy', DEVICE_PAGE_CSP)
      .send(DEVICE_PAGE));
};
