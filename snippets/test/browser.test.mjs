// Browser tests of the snippet in real headless Chromium. Started by
// snippets/browser_test.go, which runs etalage and sets ETALAGE_URL (with
// its clock frozen at 2026-11-24T12:00:00Z, inside the Sinterklaas season).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const BASE = process.env.ETALAGE_URL;
if (!BASE) throw new Error('ETALAGE_URL is not set: run these tests through go test ./snippets/');
// A normal desktop Chrome: the service treats "HeadlessChrome" as a bot
// (no cookie, nothing stored), which is right for crawlers but not here.
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});
after(async () => { await browser?.close(); });

async function newPage() {
  const context = await browser.newContext({ userAgent: UA });
  const page = await context.newPage();
  const decides = [];
  page.on('request', (r) => { if (r.url().endsWith('/v1/decide')) decides.push(r); });
  return { context, page, decides };
}

async function visit(page, path) {
  await page.goto(BASE + path);
  await page.waitForFunction(() => window.etalage && window.etalage.ready);
  return page.evaluate(() => window.etalage.ready);
}

async function cookie(context) {
  return (await context.cookies()).find((c) => c.name === 'etl');
}

test('first visit sets the cookie and shows the default hero, with one decide request', async () => {
  const { context, page, decides } = await newPage();
  const res = await visit(page, '/demo/');
  assert.ok(res, 'decide answered');
  const c = await cookie(context);
  assert.ok(c, 'etl cookie set');
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, 'Lax');
  assert.equal(await page.getAttribute('[data-etalage-slot="home-hero"]', 'data-etalage-block'), 'hero-default');
  assert.equal(decides.length, 1, 'one decide request per page view');
  const body = JSON.parse(decides[0].postData());
  assert.deepEqual(body.slots, ['banner-top', 'home-hero', 'home-picks']);
  assert.equal(body.events[0].type, 'page_view');
  await context.close();
});

test('three sneaker views make a sneaker fan', async () => {
  const { context, page } = await newPage();
  for (let i = 0; i < 3; i++) await visit(page, '/demo/c/sneakers');
  const res = await visit(page, '/demo/');
  assert.ok(res.segments.includes('sneaker-fans'), JSON.stringify(res.segments));
  assert.equal(await page.getAttribute('[data-etalage-slot="home-hero"]', 'data-etalage-block'), 'hero-sneakers');
  assert.match(await page.textContent('[data-etalage-slot="home-hero"]'), /sneakers/i);
  await context.close();
});

test('a gift toy bought in November shows the Sinterklaas banner, and never makes a toy fan', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/p/playmobil-sint');
  await page.check('#gift');
  await page.click('#buy');
  await page.evaluate(() => window.etalage.flush());
  const res = await visit(page, '/demo/');
  assert.equal(await page.getAttribute('[data-etalage-slot="banner-top"]', 'data-etalage-block'), 'sint-banner');
  assert.ok(res.segments.includes('sint-gift-buyers'));
  assert.ok(!res.segments.includes('toy-fans'));
  await context.close();
});

test('a slow decide keeps the default content and does not swap late', async () => {
  const { context, page } = await newPage();
  await page.route('**/v1/decide', async (route) => {
    await new Promise((r) => setTimeout(r, 1500));
    await route.continue();
  });
  const start = Date.now();
  await page.goto(BASE + '/demo/');
  const hero = page.locator('[data-etalage-slot="home-hero"]');
  assert.match(await hero.textContent(), /Welkom/, 'default content visible at once');
  assert.ok(Date.now() - start < 1400, 'the page did not wait for decide');
  await page.evaluate(() => window.etalage.ready);
  assert.equal(await hero.getAttribute('data-etalage-block'), null, 'no swap after the timeout');
  await context.close();
});

test('events survive a page change', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/');
  await page.route('**/v1/events', (route) => route.abort());
  await page.evaluate(() => window.etalage.track('interest', { name: 'sneakers', on: true }));
  await page.waitForTimeout(150); // the flush was attempted and failed
  await page.unroute('**/v1/events');
  const seen = [];
  page.on('request', (r) => { if (r.url().endsWith('/v1/decide')) seen.push(JSON.parse(r.postData())); });
  const res = await visit(page, '/demo/');
  assert.ok(seen[0].events.some((e) => e.type === 'interest' && e.name === 'sneakers'), 'queued event sent with the next decide');
  assert.ok(res.segments.includes('sneaker-fans'), 'and stored');
  assert.equal(await page.evaluate(() => localStorage.getItem('etalage:q')), '[]');
  await context.close();
});

test('a degraded answer puts the events back and sends them through /v1/events', async () => {
  const { context, page } = await newPage();
  await page.route('**/v1/decide', (route) => route.fulfill({
    status: 200, contentType: 'application/json',
    body: JSON.stringify({ visitor: null, segments: [], blocks: { 'home-hero': null }, degraded: true }),
  }));
  const events = page.waitForRequest((r) => r.url().endsWith('/v1/events'), { timeout: 5000 });
  await visit(page, '/demo/c/sneakers');
  const req = await events;
  const body = JSON.parse(req.postData());
  assert.ok(body.events.some((e) => e.type === 'page_view' && e.url === '/demo/c/sneakers'));
  const resp = await req.response();
  assert.equal(resp.status(), 202);
  await context.close();
});

test('identify then reset starts a new visitor', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/account');
  await page.fill('input[name=email]', 'browser@example.nl');
  await page.fill('input[name=first_name]', 'Bo');
  await page.click('#login');
  await page.evaluate(() => window.etalage.flush());
  const before = (await cookie(context)).value;
  await page.evaluate(() => window.etalage.reset());
  const afterReset = (await cookie(context)).value;
  assert.notEqual(afterReset, before);
  await context.close();
});

test('the snippet is small and revalidates with its ETag', async () => {
  const r = await fetch(BASE + '/snippet.js', { headers: { 'Accept-Encoding': 'gzip' } });
  assert.equal(r.status, 200);
  const etag = r.headers.get('etag');
  assert.ok(etag);
  const raw = await fetch(BASE + '/snippet.js', { headers: { 'Accept-Encoding': 'gzip' }, decompress: false });
  const size = Number(raw.headers.get('content-length') || (await raw.arrayBuffer()).byteLength);
  assert.ok(size > 0 && size < 4096, `gzipped size ${size}`);
  const again = await fetch(BASE + '/snippet.js', { headers: { 'If-None-Match': etag } });
  assert.equal(again.status, 304);
});
