// csp.test.mjs checks the page's sources against the rules that keep it
// working under the strict Content-Security-Policy nginx sends (no inline
// script or style, no eval) and safe with untrusted text (no HTML sinks).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const STATIC = fileURLToPath(new URL('../../static/', import.meta.url));

async function files(dir, ext) {
  const out = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await files(p, ext)));
    else if (e.name.endsWith(ext)) out.push(p);
  }
  return out;
}

test('index.html has no inline script, style or event handler', async () => {
  const html = await readFile(join(STATIC, 'index.html'), 'utf8');
  const cases = [
    ['inline <script>', /<script(?![^>]*\bsrc=)[^>]*>/i],
    ['<style> element', /<style[\s>]/i],
    ['style attribute', /\sstyle\s*=/i],
    ['event handler attribute', /\son[a-z]+\s*=/i],
    ['javascript: URL', /javascript:/i],
    ['resource from another origin', /\b(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i],
  ];
  for (const [what, re] of cases) assert.doesNotMatch(html, re, what);
  assert.match(html, /<script type="module" src="js\/app\.js"><\/script>/);
});

test('scripts use no eval and no HTML sinks', async () => {
  const js = await files(join(STATIC, 'js'), '.js');
  assert.ok(js.length >= 6, `found ${js.length} scripts`);
  const banned = [
    ['innerHTML', /\.innerHTML\b/],
    ['outerHTML', /\.outerHTML\b/],
    ['insertAdjacentHTML', /insertAdjacentHTML/],
    ['document.write', /document\.write/],
    ['eval', /\beval\s*\(/],
    ['Function constructor', /new\s+Function\s*\(/],
    ['string timer', /setTimeout\(\s*['"`]/],
    ['style attribute', /setAttribute\(\s*['"]style['"]/],
    ['hard-coded ws scheme', /['"`]wss?:\/\//],
  ];
  for (const f of js) {
    const src = await readFile(f, 'utf8');
    for (const [what, re] of banned) assert.doesNotMatch(src, re, `${what} in ${f}`);
  }
});

test('the stylesheet loads nothing from elsewhere', async () => {
  for (const f of await files(STATIC, '.css')) {
    const css = await readFile(f, 'utf8');
    assert.doesNotMatch(css, /@import|url\(\s*['"]?(?:https?:)?\/\//i, f);
  }
});
