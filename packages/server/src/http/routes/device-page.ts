/**
 * The /device page: where a user approves a device sign-in (`coffer login`)
 * with the code the device shows. Plain HTML and one inline script, no
 * framework; it only calls the JSON API with the browser's session cookie
 * (signing in there first if needed, second factor included) and sends the
 * session's CSRF token on every change. What the device sent (its name,
 * platform) is shown with textContent only, never as markup. The Content
 * Security Policy admits exactly this script and this style by their hashes.
 */
import { createHash } from 'node:crypto';

const STYLE = `
body{font:16px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:28rem;margin:0 auto;padding:1.5rem 1rem;color:#1b1b1b;background:#fff}
h1{font-size:1.4rem;margin:0 0 1rem}
[hidden]{display:none!important}
label{display:block;margin:.5rem 0 0}
input,button{font:inherit;font-size:1rem;width:100%;box-sizing:border-box;padding:.7rem;margin:.3rem 0 .6rem;border-radius:.4rem}
input{border:1px solid #888}
#code{text-transform:uppercase;letter-spacing:.2em;font-family:ui-monospace,monospace;font-size:1.3rem;text-align:center}
button{border:0;background:#1c5fd4;color:#fff;font-weight:600;cursor:pointer}
button.secondary{background:#e4e4e4;color:#1b1b1b}
button:disabled{opacity:.6;cursor:progress}
.row{display:flex;gap:.6rem}
.row button{flex:1}
dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem .8rem;margin:1rem 0;padding:.8rem;background:#f3f3f3;border-radius:.4rem;overflow-wrap:anywhere}
dt{font-weight:600}
dd{margin:0}
.warn{border-left:4px solid #c77700;padding:.5rem .8rem;background:#fff6e5}
#msg{font-weight:600;min-height:1.4em;color:#a00000}
.who{color:#555;font-size:.9rem}
`;

const SCRIPT = `
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var SECTIONS = ['loading', 'signin', 'mfa', 'blocked', 'enter', 'confirm', 'done'];
  var csrf = null;
  var challenge = null;
  var pending = null;

  function show(name) { SECTIONS.forEach(function (s) { $(s).hidden = s !== name; }); }
  function say(text) { $('msg').textContent = text || ''; }
  function errorText(r) { return (r.body && r.body.error && r.body.error.message) || 'Something went wrong; try again.'; }
  async function call(method, path, body) {
    var headers = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (csrf && method !== 'GET') headers['x-csrf-token'] = csrf;
    var res;
    try {
      res = await fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin', cache: 'no-store' });
    } catch (e) {
      return { status: 0, body: { error: { message: 'The server cannot be reached; check your connection and try again.' } } };
    }
    var data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    return { status: res.status, body: data };
  }
  async function busy(form, work) {
    var buttons = form.querySelectorAll('button');
    buttons.forEach(function (b) { b.disabled = true; });
    try { await work(); } finally { buttons.forEach(function (b) { b.disabled = false; }); }
  }
  function signedOut(text) {
    csrf = null;
    show('signin');
    say(text || '');
    $('login').focus();
  }

  async function signedIn(token, restriction, username) {
    csrf = token || null;
    if (restriction === 'mfa-enrollment') {
      $('blocked-text').textContent = 'This server requires two-factor authentication: turn it on for your account before you approve a device.';
      show('blocked');
      return;
    }
    if (restriction === 'wipe') {
      $('blocked-text').textContent = 'This browser is signed in on a device marked for wipe; it cannot approve other devices.';
      show('blocked');
      return;
    }
    if (username === undefined) {
      var me = await call('GET', '/api/v1/me');
      username = me.status === 200 ? me.body.username : '';
    }
    $('who').textContent = username;
    show('enter');
    say('');
    if ($('code').value.trim()) await lookUp();
    else $('code').focus();
  }

  async function lookUp() {
    var code = $('code').value.trim();
    if (!code) { say('Type the code your device shows.'); return; }
    var r = await call('GET', '/api/v1/auth/device/pending?userCode=' + encodeURIComponent(code));
    if (r.status === 401) { signedOut('Your session has ended; sign in again.'); return; }
    if (r.status !== 200) { say(errorText(r)); $('code').focus(); return; }
    pending = r.body;
    $('device-name').textContent = pending.deviceName;
    $('device-platform').textContent = pending.platform || 'not given';
    $('device-ip').textContent = pending.ip || 'unknown';
    $('device-time').textContent = new Date(pending.createdAt).toLocaleString();
    $('device-code').textContent = pending.userCode;
    $('new-name').value = pending.deviceName;
    $('confirm-who').textContent = $('who').textContent;
    say('');
    show('confirm');
  }

  async function decide(approve) {
    var body = { userCode: pending.userCode, approve: approve };
    var name = $('new-name').value.trim();
    if (approve && name && name !== pending.deviceName) body.deviceName = name;
    var r = await call('POST', '/api/v1/auth/device/approve', body);
    if (r.status === 401) { signedOut('Your session has ended; sign in again, then enter the code once more.'); return; }
    if (r.status !== 200) { say(errorText(r)); return; }
    $('done-text').textContent = approve
      ? 'Approved. "' + r.body.deviceName + '" is now signing in to your account; you can close this page.'
      : 'Denied. The device was refused and cannot use this code again.';
    say('');
    show('done');
  }

  $('signin-form').addEventListener('submit', function (e) {
    e.preventDefault();
    busy(e.target, async function () {
      var r = await call('POST', '/api/v1/auth/login', { login: $('login').value.trim(), password: $('password').value, client: 'browser' });
      if (r.status !== 200) { say(errorText(r)); return; }
      $('password').value = '';
      if (r.body.status === 'mfa-required') {
        challenge = r.body.challenge;
        say('');
        show('mfa');
        $('mfa-code').focus();
        return;
      }
      await signedIn(r.body.csrfToken, r.body.session && r.body.session.mfaEnrollmentRequired ? 'mfa-enrollment' : null, r.body.user && r.body.user.username);
    });
  });

  $('mfa-form').addEventListener('submit', function (e) {
    e.preventDefault();
    busy(e.target, async function () {
      var code = $('mfa-code').value.replace(/\\s/g, '');
      var body = /^\\d{6}$/.test(code) ? { challenge: challenge, code: code } : { challenge: challenge, recoveryCode: code };
      var r = await call('POST', '/api/v1/auth/login/2fa', body);
      if (r.status === 401 && r.body && r.body.error && r.body.error.code === 'UNAUTHENTICATED') { signedOut(errorText(r)); return; }
      if (r.status !== 200) { say(errorText(r)); return; }
      $('mfa-code').value = '';
      await signedIn(r.body.csrfToken, r.body.session && r.body.session.mfaEnrollmentRequired ? 'mfa-enrollment' : null, r.body.user && r.body.user.username);
    });
  });

  $('code-form').addEventListener('submit', function (e) {
    e.preventDefault();
    busy(e.target, lookUp);
  });
  $('approve').addEventListener('click', function () { busy($('confirm'), function () { return decide(true); }); });
  $('deny').addEventListener('click', function () { busy($('confirm'), function () { return decide(false); }); });
  $('other-code').addEventListener('click', function () { pending = null; $('code').value = ''; say(''); show('enter'); $('code').focus(); });
  $('another').addEventListener('click', function () { pending = null; $('code').value = ''; say(''); show('enter'); $('code').focus(); });
  $('signout').addEventListener('click', function () {
    busy($('done'), async function () {
      await call('POST', '/api/v1/auth/logout');
      signedOut('You are signed out of this browser.');
    });
  });

  (async function start() {
    var params = new URLSearchParams(location.search);
    var code = params.get('code');
    if (code) {
      $('code').value = code;
      // The code has no business staying in the history or an address bar screenshot.
      history.replaceState(null, '', location.pathname);
    }
    var r = await call('GET', '/api/v1/auth/session');
    if (r.status === 200) await signedIn(r.body.csrfToken, r.body.restriction);
    else signedOut('');
  })();
})();
`;

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Admits the page's own script and style and nothing else; the API on this origin is all it talks to. */
export const DEVICE_PAGE_CSP = [
  "default-src 'none'", `script-src ${hash(SCRIPT)}`, `style-src ${hash(STYLE)}`, "connect-src 'self'",
  "form-action 'none'", "frame-ancestors 'none'", "base-uri 'none'",
].join('; ');

export const DEVICE_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in a device to Coffer</title>
<style>${STYLE}</style>
</head><body>
<main>
<h1>Sign in a device</h1>
<noscript><p>This page needs JavaScript.</p></noscript>
<section id="loading"><p>Loading…</p></section>

<section id="signin" hidden>
<p>Sign in to your Coffer account first.</p>
<form id="signin-form">
<label for="login">Username or e-mail</label><input id="login" name="login" autocomplete="username" autocapitalize="none" spellcheck="false" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="signin-button">Sign in</button>
</form>
</section>

<section id="mfa" hidden>
<form id="mfa-form">
<label for="mfa-code">Code from your authenticator app (or a recovery code)</label>
<input id="mfa-code" name="code" autocomplete="one-time-code" inputmode="text" autocapitalize="none" spellcheck="false" required>
<button id="mfa-button">Continue</button>
</form>
</section>

<section id="blocked" hidden><p id="blocked-text"></p></section>

<section id="enter" hidden>
<p class="who">Signed in as <strong id="who"></strong></p>
<form id="code-form">
<label for="code">The code your device shows</label>
<input id="code" name="code" placeholder="XXXX-XXXX" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="32" required>
<button id="code-button">Continue</button>
</form>
</section>

<section id="confirm" hidden>
<p>A device asks to sign in to your account <strong id="confirm-who"></strong>:</p>
<dl>
<dt>Device</dt><dd id="device-name"></dd>
<dt>Platform</dt><dd id="device-platform"></dd>
<dt>IP address</dt><dd id="device-ip"></dd>
<dt>Asked at</dt><dd id="device-time"></dd>
<dt>Code</dt><dd id="device-code"></dd>
</dl>
<p class="warn">Approve only if you started this sign-in yourself, just now, on a device you own. If someone sent you this code or link, deny it.</p>
<label for="new-name">Name in your devices list</label>
<input id="new-name" name="deviceName" maxlength="100" autocomplete="off">
<div class="row"><button id="approve" type="button">Approve</button><button id="deny" type="button" class="secondary">Deny</button></div>
<button id="other-code" type="button" class="secondary">Enter another code</button>
</section>

<section id="done" hidden>
<p id="done-text"></p>
<button id="another" type="button" class="secondary">Approve another device</button>
<button id="signout" type="button" class="secondary">Sign out of this browser</button>
</section>

<p id="msg" role="status" aria-live="polite"></p>
</main>
<script>${SCRIPT}</script>
</body></html>
`;
