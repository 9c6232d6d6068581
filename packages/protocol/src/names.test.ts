import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CofferError } from './errors.ts';
import { MAX_DEPTH, MAX_NAME_BYTES, MAX_PATH_BYTES, nameProblem, normalizeName, parsePath, type NameProblem } from './names.ts';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

/** Asserts that `fn` throws a CofferError with `code` (and, when given, `details.reason`). */
function assertCoffer(fn: () => unknown, code: string, reason?: string): CofferError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof CofferError, `expected a CofferError ${code}, got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.equal(caught.code, code);
  if (reason !== undefined) assert.equal(caught.details?.reason, reason);
  return caught;
}

const REFUSED: [string, string, NameProblem][] = [
  ['empty', '', 'empty'],
  ['dot', '.', 'dot'],
  ['dot-dot', '..', 'dot'],
  ['slash', 'a/b', 'forbidden-character'],
  ['leading slash', '/etc', 'forbidden-character'],
  ['backslash', 'a\\b', 'forbidden-character'],
  ['Windows traversal', '..\\..\\windows', 'forbidden-character'],
  ['NUL', 'a\u0000b', 'forbidden-character'],
  ['BEL', 'a\u0007b', 'forbidden-character'],
  ['newline', 'a\nb', 'forbidden-character'],
  ['tab', 'a\tb', 'forbidden-character'],
  ['unit separator', 'a\u001fb', 'forbidden-character'],
  ['DEL', 'a\u007fb', 'forbidden-character'],
  ['colon', 'a:b', 'forbidden-character'],
  ['star', 'a*b', 'forbidden-character'],
  ['question mark', 'a?b', 'forbidden-character'],
  ['double quote', 'a"b', 'forbidden-character'],
  ['less than', 'a<b', 'forbidden-character'],
  ['greater than', 'a>b', 'forbidden-character'],
  ['pipe', 'a|b', 'forbidden-character'],
  ['trailing dot', 'name.', 'trailing-dot-or-space'],
  ['trailing dots', 'name...', 'trailing-dot-or-space'],
  ['trailing space', 'name ', 'trailing-dot-or-space'],
  ['CON', 'CON', 'windows-reserved'],
  ['con (lower case)', 'con', 'windows-reserved'],
  ['PRN', 'PRN', 'windows-reserved'],
  ['AUX', 'Aux', 'windows-reserved'],
  ['NUL', 'NUL', 'windows-reserved'],
  ['COM1', 'COM1', 'windows-reserved'],
  ['COM9', 'com9', 'windows-reserved'],
  ['COM superscript one', 'COM\u00b9', 'windows-reserved'],
  ['LPT1', 'LPT1', 'windows-reserved'],
  ['CON.txt', 'CON.txt', 'windows-reserved'],
  ['nul.tar.gz', 'nul.tar.gz', 'windows-reserved'],
  ['LPT1.log', 'LPT1.log', 'windows-reserved'],
  ['256 ASCII bytes', 'a'.repeat(256), 'too-long'],
  ['256 bytes of two-byte characters', '\u00e9'.repeat(128), 'too-long'],
  ['256 bytes of four-byte characters', '\u{1F600}'.repeat(64), 'too-long'],
];

const ACCEPTED = [
  'a', 'report.pdf', '.hidden', '..a', 'a..b', 'CONSOLE', 'CON1', 'COM', 'LPT', 'COM10', 'xCON', 'con-tract.txt', 'AUXILIARY.doc',
  ' leading space', 'Café', '日本語のファイル.txt', '\u{1F600}', 'a b', 'a,b;c=d', "it's [1] {x} & ~#%@!$+", 'a'.repeat(255),
  '\u20ac'.repeat(85), // 255 bytes of three-byte characters
  'tilde~1', 'TRAILING-dash-', 'name.tar.gz',
];

describe('nameProblem', () => {
  for (const [label, name, problem] of REFUSED) {
    it(`refuses ${label} (${problem})`, () => assert.equal(nameProblem(name), problem));
  }
  for (const name of ACCEPTED) {
    it(`accepts ${JSON.stringify(name.length > 40 ? `${name.slice(0, 12)}… (${bytes(name)} bytes)` : name)}`, () => assert.equal(nameProblem(name), null));
  }

  it('measures length in UTF-8 bytes, not characters', () => {
    assert.equal(MAX_NAME_BYTES, 255);
    const twoByte = '\u00e9'.repeat(128);
    assert.equal(twoByte.length, 128);
    assert.equal(bytes(twoByte), 256);
    assert.equal(nameProblem(twoByte), 'too-long');
    assert.equal(nameProblem(twoByte.slice(1)), null);
  });
});

describe('normalizeName', () => {
  it('returns the NFC form of an NFD name', () => {
    const nfd = 'Cafe\u0301.txt';
    const out = normalizeName(nfd);
    assert.equal(out, 'Caf\u00e9.txt');
    assert.equal(out, out.normalize('NFC'));
    assert.equal(normalizeName('Caf\u00e9.txt'), out);
  });

  it('leaves compatibility characters alone (NFC, not NFKC)', () => {
    assert.equal(normalizeName('\ufb01le'), '\ufb01le'); // the "fi" ligature
    assert.equal(normalizeName('a\uff1ab'), 'a\uff1ab'); // a full-width colon is not a colon
  });

  it('measures the length after normalization', () => {
    // U+0958 is a composition exclusion: NFC turns each of these 3-byte characters into two 3-byte ones.
    const raw = '\u0958'.repeat(85);
    assert.equal(bytes(raw), 255);
    assertCoffer(() => normalizeName(raw), 'INVALID_NAME', 'too-long');
  });

  for (const [label, name, problem] of REFUSED) {
    it(`throws INVALID_NAME with details.reason for ${label}`, () => {
      const e = assertCoffer(() => normalizeName(name), 'INVALID_NAME', problem);
      assert.equal(e.status, 400);
      assert.ok(e.message.length > 0);
    });
  }

  it('refuses a name that is not well-formed Unicode', () => {
    assertCoffer(() => normalizeName('a\ud800b'), 'INVALID_NAME', 'malformed-unicode');
    assertCoffer(() => normalizeName('\udc00'), 'INVALID_NAME', 'malformed-unicode');
  });

  it('refuses values that are not strings', () => {
    for (const v of [undefined, null, 1, {}, ['a'], true]) assertCoffer(() => normalizeName(v), 'INVALID_NAME');
  });

  it('NFD is normalized before the reserved-name and character checks', () => {
    // "CON" spelled with no combining marks stays reserved; a combining mark makes a different, legal name.
    assertCoffer(() => normalizeName('CON'), 'INVALID_NAME', 'windows-reserved');
    assert.equal(normalizeName('CO\u0302N'), 'C\u00d4N');
  });

  it('property: every accepted name is NFC, valid, at most 255 bytes, and a fixed point', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (raw) => {
      let out: string;
      try {
        out = normalizeName(raw);
      } catch (e) {
        assert.ok(e instanceof CofferError);
        assert.equal(e.code, 'INVALID_NAME');
        assert.ok(['empty', 'dot', 'too-long', 'forbidden-character', 'windows-reserved', 'trailing-dot-or-space', 'malformed-unicode']
          .includes(String(e.details?.reason)), `unexpected reason ${String(e.details?.reason)}`);
        return;
      }
      assert.equal(out, out.normalize('NFC'));
      assert.equal(nameProblem(out), null);
      assert.ok(bytes(out) <= MAX_NAME_BYTES);
      assert.ok(!/[\u0000-\u001f\u007f<>:"/\\|?*]/.test(out));
      assert.equal(normalizeName(out), out);
    }), { numRuns: 2000 });
  });

  it('property: NFC and NFD spellings of a name normalize to the same name', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }), (raw) => {
      const outcome = (s: string) => {
        try {
          return normalizeName(s);
        } catch (e) {
          return `error:${String((e as CofferError).details?.reason)}`;
        }
      };
      assert.equal(outcome(raw.normalize('NFD')), outcome(raw.normalize('NFC')));
    }), { numRuns: 1000 });
  });
});

describe('parsePath', () => {
  it('maps the root spellings to no names', () => {
    assert.deepEqual(parsePath(''), []);
    assert.deepEqual(parsePath('/'), []);
    assert.deepEqual(parsePath('///'), []);
  });

  it('splits on "/" and ignores empty segments', () => {
    assert.deepEqual(parsePath('a/b/c.txt'), ['a', 'b', 'c.txt']);
    assert.deepEqual(parsePath('/a//b/'), ['a', 'b']);
  });

  it('normalizes every segment to NFC', () => {
    assert.deepEqual(parsePath('Cafe\u0301/Re\u0301sume\u0301.txt'), ['Caf\u00e9', 'R\u00e9sum\u00e9.txt']);
  });

  it('refuses traversal segments with INVALID_NAME', () => {
    for (const p of ['..', '../etc/passwd', 'a/../../etc/passwd', 'a/./b', './a', 'a/..']) {
      assertCoffer(() => parsePath(p), 'INVALID_NAME', 'dot');
    }
    // A backslash is not a separator: it is refused as a character.
    assertCoffer(() => parsePath('..\\..\\etc\\passwd'), 'INVALID_NAME', 'forbidden-character');
  });

  it('refuses any invalid segment with the reason', () => {
    assertCoffer(() => parsePath('ok/CON.txt'), 'INVALID_NAME', 'windows-reserved');
    assertCoffer(() => parsePath('ok/bad:name/x'), 'INVALID_NAME', 'forbidden-character');
    assertCoffer(() => parsePath('ok/trailing./x'), 'INVALID_NAME', 'trailing-dot-or-space');
    assertCoffer(() => parsePath(`ok/${'\u00e9'.repeat(128)}`), 'INVALID_NAME', 'too-long');
    assertCoffer(() => parsePath('a/b\u0000/c'), 'INVALID_NAME', 'forbidden-character');
  });

  it('accepts a path of exactly 4096 bytes and refuses 4097 with PATH_TOO_LONG', () => {
    assert.equal(MAX_PATH_BYTES, 4096);
    const exact = '/' + Array(16).fill('a'.repeat(255)).join('/');
    assert.equal(bytes(exact), 4096);
    assert.equal(parsePath(exact).length, 16);
    assertCoffer(() => parsePath(exact + '/'), 'PATH_TOO_LONG');
  });

  it('measures the path in UTF-8 bytes, not characters', () => {
    const p = Array(21).fill('\u00e9'.repeat(100)).join('/');
    assert.ok(p.length < MAX_PATH_BYTES);
    assert.ok(bytes(p) > MAX_PATH_BYTES);
    const e = assertCoffer(() => parsePath(p), 'PATH_TOO_LONG');
    assert.equal(e.status, 400);
  });

  it('refuses a path deeper than MAX_DEPTH with PATH_TOO_LONG', () => {
    assert.equal(parsePath('a/'.repeat(MAX_DEPTH)).length, MAX_DEPTH);
    assertCoffer(() => parsePath('a/'.repeat(MAX_DEPTH + 1)), 'PATH_TOO_LONG');
  });

  it('property: joining valid names with "/" parses back to the same names', () => {
    const validName = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 })
      .map((s) => s.normalize('NFC'))
      .filter((s) => nameProblem(s) === null);
    fc.assert(fc.property(fc.array(validName, { maxLength: 20 }), fc.boolean(), fc.boolean(), (names, lead, trail) => {
      const p = (lead ? '/' : '') + names.join('/') + (trail ? '/' : '');
      assert.deepEqual(parsePath(p), names);
    }), { numRuns: 1000 });
  });

  it('property: parsePath never returns "." or ".." or a name containing a separator', () => {
    fc.assert(fc.property(fc.array(fc.constantFrom('a', '.', '..', '/', '\\', '%2e', '\u0000', 'b'), { maxLength: 12 }), (parts) => {
      let names: string[];
      try {
        names = parsePath(parts.join(''));
      } catch (e) {
        assert.ok(e instanceof CofferError);
        assert.ok(e.code === 'INVALID_NAME' || e.code === 'PATH_TOO_LONG');
        return;
      }
      for (const n of names) {
        assert.ok(n !== '.' && n !== '..');
        assert.ok(!n.includes('/') && !n.includes('\\') && !n.includes('\u0000'));
      }
    }), { numRuns: 1000 });
  });
});
