// Browser tests of the console (/admin/ on the admin listener) in real
// headless Chromium. Started by snippets/browser_test.go after the demo's
// tests (these apply definitions), with ETALAGE_ADMIN_URL and the token.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const ARTIFACTS = new URL('./artifacts/', import.meta.url).pathname;
mkdirSync(ARTIFACTS, { recursive: true });
async function shot(page, name) { await page.screenshot({ path: ARTIFACTS + name + '.png', fullPage: true }); }

const BASE = process.env.ETALAGE_URL, ADMIN = process.env.ETALAGE_ADMIN_URL, TOKEN = process.env.ETALAGE_ADMIN_TOKEN;
if (!ADMIN || !TOKEN) throw new Error('ETALAGE_ADMIN_URL and ETALAGE_ADMIN_TOKEN are not set: run these tests through go test ./snippets/');
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});
after(async () => { await browser?.close(); });

// api calls the admin API as a script would, with the bearer token.
async function api(method, path, body, headers = {}) {
  const r = await fetch(ADMIN + path, { method, body, headers: { Authorization: 'Bearer ' + TOKEN, ...headers } });
  return { status: r.status, json: await r.json() };
}

async function signedIn(viewport = { width: 1200, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(ADMIN + '/admin/');
  await page.fill('#token', TOKEN);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#ov-segments tbody tr');
  return { context, page, errors };
}

const heroDoc = (title) => `segments:
  - id: sneaker-fans
    rule: {any: [{interest: sneakers}, {event: page_view, url_contains: /sneakers, count: {gte: 3}, within: 14d}]}
blocks:
  - {id: hero-default, slot: home-hero, html: "<h2>${title}</h2>"}
  - {id: hero-sneakers, slot: home-hero, segment: sneaker-fans, priority: 10, html: "<h2>Sneakers!</h2>"}
`;

test('console: signing in takes the admin token once, into an HttpOnly SameSite=Strict cookie', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(ADMIN + '/admin/');
  await shot(page, 'console-0-sign-in');
  await page.fill('#token', 'wrong-token');
  await page.click('#signin-form button');
  await page.waitForFunction(() => document.querySelector('#signin-error').textContent.length > 0);
  assert.match(await page.textContent('#signin-error'), /not the admin token/);
  await page.fill('#token', TOKEN);
  await page.click('#signin-form button');
  await page.waitForSelector('#ov-segments tbody tr');
  const c = (await context.cookies()).find((k) => k.name === 'etalage_console');
  assert.ok(c, 'session cookie set');
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, 'Strict');
  assert.notEqual(c.value, TOKEN, 'the cookie is a session, not the token');
  assert.equal(await page.evaluate(() => document.cookie), '', 'page scripts see no cookie');
  await page.reload();
  await page.waitForSelector('#ov-segments tbody tr');
  assert.equal(await page.isVisible('#signin'), false, 'signed in once: a reload keeps the session');
  const segs = await page.$$eval('#ov-segments tbody tr td:first-child', (t) => t.map((e) => e.textContent));
  assert.ok(segs.length > 0);
  await shot(page, 'console-1-overview');
  await page.click('#signout');
  await page.waitForSelector('#signin:not([hidden])');
  await context.close();
});

test('console: a bad document shows each error at its line; a dry run shows sizes and a visitor before and after', async () => {
  // A visitor who is a sneaker fan, made in the demo shop.
  const shopper = await browser.newContext({ userAgent: UA });
  const sp = await shopper.newPage();
  for (let i = 0; i < 3; i++) { await sp.goto(BASE + '/demo/c/sneakers'); await sp.evaluate(() => window.etalage.ready); }
  const visitor = (await shopper.cookies()).find((c) => c.name === 'etl').value;
  await shopper.close();

  const { context, page, errors } = await signedIn();
  await page.click('a[href="#edit"]');
  await page.waitForFunction(() => document.getElementById('ed-text').value.length > 0);
  const bad = 'segments:\n  - id: a\n    rule: {interest: x}\n  - id: b\n    parent: nope\n    rule: {event: purchase, count: {gte: -1}}\n';
  await page.fill('#ed-text', bad);
  await page.click('#ed-check');
  await page.waitForSelector('#ed-result .problems');
  const problems = await page.$$eval('#ed-result .problems li', (l) => l.map((e) => e.textContent));
  assert.ok(problems.some((p) => p.startsWith('line 5') && p.includes('unknown segment')), problems.join(' | '));
  assert.ok(problems.some((p) => p.startsWith('line 6') && p.includes('never negative')), problems.join(' | '));
  const marked = await page.$$eval('#ed-gutter .bad', (l) => l.map((e) => e.textContent.trim()));
  assert.deepEqual(marked, ['5', '6'], 'the gutter marks the lines');
  await page.click('#ed-result .problems a');
  assert.equal(await page.evaluate(() => { const t = document.getElementById('ed-text'); return t.value.slice(t.selectionStart, t.selectionEnd); }), '    parent: nope', 'a problem link selects its line');
  await shot(page, 'console-2-errors-at-lines');

  await page.fill('#ed-text', heroDoc('Hallo'));
  await page.fill('#ed-visitor', visitor);
  await page.click('#ed-check');
  await page.waitForSelector('#dry-segments');
  const rows = await page.$$eval('#dry-segments tbody tr', (l) => l.map((e) => e.textContent));
  assert.ok(rows.some((r) => r.startsWith('sneaker-fans')), rows.join(' | '));
  assert.ok(rows.some((r) => r.startsWith('runners (removed)')), 'segments that go are listed');
  assert.match(await page.textContent('#dry-visitor'), /Before \(running\).*home-hero: hero-sneakers.*After \(this document\).*home-hero: hero-sneakers/s);
  assert.ok(await page.isVisible('#ed-result .diff'), 'the diff against the running document');
  await shot(page, 'console-3-dry-run');
  assert.deepEqual(errors, []);
  await context.close();
});

test('console: apply with If-Match; an apply after someone else applied is refused and shown', async () => {
  const { context, page } = await signedIn();
  await page.click('a[href="#edit"]');
  await page.waitForFunction(() => document.getElementById('ed-text').value.length > 0);
  await page.fill('#ed-text', heroDoc('Welkom terug'));
  await page.fill('#ed-note', 'a warmer welcome');
  await page.click('#ed-apply');
  await page.waitForSelector('#ed-result .ok');
  assert.match(await page.textContent('#ed-result'), /Applied as revision \d+/);
  const cur = await api('GET', '/admin/v1/definitions');
  assert.equal(cur.json.document, heroDoc('Welkom terug'));

  // Someone else applies meanwhile, through the API.
  const other = await api('PUT', '/admin/v1/definitions?note=someone+else', heroDoc('Van iemand anders'), { 'If-Match': `"${cur.json.revision}"` });
  assert.equal(other.status, 200);
  await page.fill('#ed-text', heroDoc('Mijn versie'));
  await page.click('#ed-apply');
  await page.waitForSelector('#ed-result .error');
  assert.match(await page.textContent('#ed-result'), /someone else applied a new revision/);
  await page.waitForSelector('#ed-result .diff');
  assert.equal(await page.inputValue('#ed-text'), heroDoc('Mijn versie'), 'the editor keeps my text');
  assert.equal((await api('GET', '/admin/v1/definitions')).json.document, heroDoc('Van iemand anders'), 'and the server kept theirs');
  await shot(page, 'console-4-conflict');
  await context.close();
});

test('console: history shows revisions with time and note, diffs them, and rolls back as a new revision', async () => {
  const { context, page } = await signedIn();
  await page.click('a[href="#history"]');
  await page.waitForSelector('#hi-list tbody tr');
  const rows = await page.$$eval('#hi-list tbody tr', (l) => l.map((e) => e.textContent));
  assert.ok(rows.some((r) => r.includes('a warmer welcome')), rows.join(' | '));
  assert.ok(rows[0].includes('(running)'));
  const before = (await api('GET', '/admin/v1/definitions')).json;
  await page.click('#hi-list tbody tr:first-child button');
  await page.waitForSelector('#hi-detail .diff');
  assert.match(await page.textContent('#hi-detail .diff'), /- .*Welkom terug[\s\S]*\+ .*Van iemand anders/);
  page.once('dialog', (d) => d.accept());
  const target = await page.$('#hi-list tbody tr:nth-child(2)');
  const targetRev = Number((await target.$eval('td', (e) => e.textContent)).split(' ')[0]);
  await target.$('button:has-text("Roll back")').then((b) => b.click());
  await page.waitForFunction(() => document.getElementById('flash').textContent.includes('Rolled back'));
  const now = (await api('GET', '/admin/v1/definitions')).json;
  assert.equal(now.revision, before.revision + 1, 'a rollback is a new revision');
  assert.equal(now.document, (await api('GET', '/admin/v1/definitions/revisions/' + targetRev)).json.document);
  await page.waitForFunction(() => document.querySelector('#hi-list tbody tr td')?.textContent.includes('(running)'));
  assert.match(await page.textContent('#hi-list tbody tr:first-child'), /rollback to revision/);
  await shot(page, 'console-5-history');
  await context.close();
});

test('console: visitor lookup shows the profile, segments, the decision in words and the homepage as they see it', async () => {
  const shopper = await browser.newContext({ userAgent: UA });
  const sp = await shopper.newPage();
  for (let i = 0; i < 3; i++) { await sp.goto(BASE + '/demo/c/sneakers'); await sp.evaluate(() => window.etalage.ready); }
  const visitor = (await shopper.cookies()).find((c) => c.name === 'etl').value;
  await shopper.close();

  const { context, page } = await signedIn({ width: 390, height: 844 }); // a phone
  await page.click('a[href="#visitor"]');
  await page.fill('#vi-ref', 'email:nobody@example.com');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#vi-result .error');
  assert.match(await page.textContent('#vi-result'), /no profile/i, 'an unknown visitor says so');

  await page.fill('#vi-ref', visitor);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#vi-words li');
  assert.match(await page.textContent('#vi-profile'), /page_view \/demo\/c\/sneakers/);
  assert.match(await page.textContent('#vi-segments'), /✓ sneaker-fans/);
  assert.match(await page.textContent('#vi-words'), /In home-hero you see “Sneakers!” \(hero-sneakers\) because you are in segment sneaker-fans/);
  const frame = page.frameLocator('#vi-preview');
  await frame.locator('[data-etalage-slot="home-hero"]').waitFor();
  assert.match(await frame.locator('[data-etalage-slot="home-hero"]').textContent(), /Sneakers!/, 'the demo homepage as this visitor sees it');
  const wide = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
  assert.ok(wide, 'no sideways scrolling on a phone');
  await shot(page, 'console-6-visitor-phone');
  await context.close();
});
