// Browser tests of the snippet in real headless Chromium. Started by
// snippets/browser_test.go, which runs etalage and sets ETALAGE_URL (with
// its clock frozen at 2026-11-24T12:00:00Z, inside the Sinterklaas season).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const ARTIFACTS = new URL('./artifacts/', import.meta.url).pathname;
mkdirSync(ARTIFACTS, { recursive: true });
async function shot(page, name) { await page.screenshot({ path: ARTIFACTS + name + '.png', fullPage: true }); }

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

// These tests look at what the pages show, not at the snippet's deadline:
// on a loaded test machine a decide can take longer than the 400 ms after
// which slots keep their defaults, so the pages get a generous data-timeout.
async function demoPage() {
  const p = await newPage();
  await p.page.route('**/demo/**', async (route) => {
    if (route.request().resourceType() !== 'document') return route.continue();
    const r = await route.fetch();
    await route.fulfill({ response: r, body: (await r.text()).replace('<script async src="/snippet.js">', '<script async src="/snippet.js" data-timeout="10000">') });
  });
  return p;
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
  const { context, page, decides } = await demoPage();
  const res = await visit(page, '/demo/');
  assert.ok(res, 'decide answered');
  const c = await cookie(context);
  assert.ok(c, 'etl cookie set');
  assert.equal(c.httpOnly, true);
  assert.equal(c.sameSite, 'Lax');
  assert.equal(await page.getAttribute('[data-etalage-slot="home-hero"]', 'data-etalage-block'), 'hero-default');
  assert.equal(decides.length, 1, 'one decide request per page view');
  const body = JSON.parse(decides[0].postData());
  assert.deepEqual(body.slots, ['greeting', 'banner-top', 'home-hero', 'home-moment', 'home-cart', 'home-picks', 'home-newsletter']);
  assert.equal(body.events[0].type, 'page_view');
  await context.close();
});

test('three sneaker views make a sneaker fan', async () => {
  const { context, page } = await demoPage();
  for (let i = 0; i < 3; i++) await visit(page, '/demo/c/sneakers');
  const res = await visit(page, '/demo/');
  assert.ok(res.segments.includes('sneaker-fans'), JSON.stringify(res.segments));
  assert.equal(await page.getAttribute('[data-etalage-slot="home-hero"]', 'data-etalage-block'), 'hero-sneakers');
  assert.match(await page.textContent('[data-etalage-slot="home-hero"]'), /sneakers/i);
  await shot(page, '1-sneaker-fan-home');
  await context.close();
});

test('a gift toy bought in November shows the Sinterklaas banner, and never makes a toy fan', async () => {
  const { context, page } = await demoPage();
  await visit(page, '/demo/p/playmobil-sint');
  await page.check('#gift');
  await page.click('#buy');
  await page.evaluate(() => window.etalage.flush());
  const res = await visit(page, '/demo/');
  assert.equal(await page.getAttribute('[data-etalage-slot="banner-top"]', 'data-etalage-block'), 'sint-banner');
  assert.ok(res.segments.includes('sint-gift-buyers'));
  await shot(page, '2-sinterklaas-banner');
  assert.ok(!res.segments.includes('toy-fans'));
  await context.close();
});

test('a slow decide keeps the default content and does not swap late', async () => {
  const { context, page } = await newPage();
  await page.route('**/v1/decide', async (route) => {
    await new Promise((r) => setTimeout(r, 3000));
    await route.continue();
  });
  const start = Date.now();
  await page.goto(BASE + '/demo/', { waitUntil: 'domcontentloaded' });
  const hero = page.locator('[data-etalage-slot="home-hero"]');
  assert.match(await hero.textContent(), /Welkom/, 'default content visible at once');
  // The decide takes 3 s: a page that shows well before that did not wait
  // for it (the margin is wide, for loaded test machines).
  assert.ok(Date.now() - start < 2500, 'the page did not wait for decide');
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
  const events = page.waitForRequest((r) => r.url().endsWith('/v1/events'), { timeout: 30000 });
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
  await page.waitForFunction(() => document.querySelector('#note').textContent.includes('browser@example.nl'));
  await page.evaluate(() => window.etalage.flush());
  const me = await (await page.request.get(BASE + '/demo/api/me')).json();
  assert.equal(me.profile.primary.email, 'browser@example.nl', 'identified');
  assert.equal(me.profile.primary.fields.first_name, 'Bo');
  const before = (await cookie(context)).value;
  await page.evaluate(() => window.etalage.reset());
  const afterReset = (await cookie(context)).value;
  assert.notEqual(afterReset, before);
  await context.close();
});

test('the cookie value never reaches page JavaScript', async () => {
  const { context, page } = await newPage();
  const res = await visit(page, '/demo/');
  const c = await cookie(context);
  assert.ok(c, 'etl cookie set');
  assert.equal(res.visitor, undefined, 'no visitor in the decide answer');
  assert.equal(await page.evaluate(() => window.etalage.visitor), undefined, 'no etalage.visitor');
  assert.ok(!(await page.evaluate(() => document.cookie)).includes(c.value), 'HttpOnly');
  const me = await (await page.request.get(BASE + '/demo/api/me')).text();
  assert.ok(!me.includes(c.value), 'not in /demo/api/me either');
  const reset = await page.evaluate(() => window.etalage.reset());
  assert.equal(reset.visitor, undefined, 'nor in the reset answer');
  await context.close();
});

test('identify without a token stays on the own profile; the owner signs in with one', async () => {
  // The owner signs in through the demo's login (a token from the stand-in backend).
  const owner = await newPage();
  await visit(owner.page, '/demo/account');
  await owner.page.fill('input[name=email]', 'owner@example.nl');
  await owner.page.fill('input[name=first_name]', 'Olga');
  await owner.page.click('#login');
  await owner.page.waitForFunction(() => document.querySelector('#note').textContent.includes('owner@example.nl'));
  await owner.page.evaluate(() => window.etalage.flush());
  const ownerCookie = (await cookie(owner.context)).value;

  // A stranger types the owner's address into identify, without a token.
  const att = await newPage();
  await visit(att.page, '/demo/');
  const before = (await cookie(att.context)).value;
  await att.page.evaluate(() => { window.etalage.identify('owner@example.nl', { first_name: 'Mallory' }); return window.etalage.flush(); });
  const res = await visit(att.page, '/demo/');
  assert.equal((await cookie(att.context)).value, before, 'the cookie did not move');
  assert.notEqual(before, ownerCookie);
  const me = await (await att.page.request.get(BASE + '/demo/api/me')).json();
  assert.equal(me.profile.primary.email, undefined, 'no contact joined');
  assert.equal(me.profile.primary.known, false);
  assert.equal(me.profile.primary.fields.email, 'owner@example.nl', 'the claim is kept on the own profile');
  assert.ok(!JSON.stringify(me).includes('Olga') && !JSON.stringify(res).includes('Olga'), 'nothing of the owner shows');

  const ownerMe = await (await owner.page.request.get(BASE + '/demo/api/me')).json();
  assert.equal(ownerMe.profile.primary.email, 'owner@example.nl');
  assert.equal(ownerMe.profile.primary.fields.first_name, 'Olga', 'the owner is untouched');
  await owner.context.close();
  await att.context.close();
});

test('a cookie that does not come back (cross-site) stores nothing and says so', async () => {
  const { context, page } = await newPage();
  // A plain shop page (the demo's helpers flush on load, which would hide
  // what the snippet keeps).
  await page.route(BASE + '/plain/**', (route) => route.fulfill({ contentType: 'text/html',
    body: '<!doctype html><script async src="/snippet.js"></script><div data-etalage-slot="home-hero">x</div>' }));
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  const first = await visit(page, '/plain/a');
  assert.equal(first.cookie, undefined, 'a first visit is normal');
  // Stand-in for a browser blocking a third-party cookie: it never comes back.
  await context.clearCookies();
  const again = await visit(page, '/plain/b');
  assert.equal(again.cookie, 'missing');
  assert.ok(errors.some((e) => e.includes('does not come back')), 'the console says why: ' + errors.join(' | '));
  const queued = await page.evaluate(() => JSON.parse(localStorage.getItem('etalage:q') || '[]'));
  assert.ok(queued.some((e) => e.type === 'page_view' && e.url === '/plain/b'), 'the page view is kept, not stored');
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

test('the demo journey: cart, gift checkout, newsletter, own profile panel', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/p/board-game');
  await page.click('#add');
  await page.evaluate(() => window.etalage.flush());
  await visit(page, '/demo/cart');
  await page.waitForFunction(() => document.querySelector('#cart-items').textContent.includes('board-game'));
  await page.check('#gift');
  await page.click('#checkout');
  await page.waitForFunction(() => document.querySelector('#note').textContent.includes('Besteld'));
  await page.evaluate(() => window.etalage.flush());
  await visit(page, '/demo/');
  await page.click('#newsletter-signup');
  await page.evaluate(() => window.etalage.flush());
  await page.waitForFunction(() => document.querySelector('#me').textContent.includes('"newsletter": true'));
  const panel = JSON.parse(await page.textContent('#me'));
  assert.ok(panel.decision.segments.includes('sint-gift-buyers'), JSON.stringify(panel.decision.segments));
  assert.equal(panel.profile.primary.fields.newsletter, true);
  const bought = panel.profile.primary.behaviour.filter((c) => (c.event === 'purchase' || c.event === 'cart_add') && c.sku === 'board-game');
  assert.deepEqual(bought, [], 'the gift stayed out of the primary profile');
  assert.ok(panel.profile.seasonal.sinterklaas.behaviour.some((c) => c.event === 'purchase' && c.sku === 'board-game'), 'and is in the Sinterklaas profile');
  await shot(page, '3-own-profile-panel');
  await context.close();
});

test('events are retried after a 503 with Retry-After', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/');
  let refused = 0;
  await page.route('**/v1/events', async (route) => {
    if (refused++ === 0) return route.fulfill({ status: 503, headers: { 'Retry-After': '1' }, contentType: 'application/json', body: '{"error":{"code":"unavailable","message":"down"}}' });
    return route.continue();
  });
  const delivered = page.waitForResponse((r) => r.url().endsWith('/v1/events') && r.status() === 202, { timeout: 30000 });
  await page.evaluate(() => window.etalage.track('interest', { name: 'sneakers', on: true }));
  await delivered;
  assert.equal(refused, 2, 'one refusal, then the retry');
  // The snippet empties its queue once it has read the answer, a moment
  // after the response event.
  await page.waitForFunction(() => localStorage.getItem('etalage:q') === '[]', null, { timeout: 30000 });
  await context.close();
});

test('a flush while a batch is on its way waits for it and sends nothing twice', async () => {
  const { context, page } = await newPage();
  await page.route(BASE + '/plain/**', (route) => route.fulfill({ contentType: 'text/html',
    body: '<!doctype html><script async src="/snippet.js"></script><div data-etalage-slot="home-hero">x</div>' }));
  await visit(page, '/plain/a');
  const sent = [];
  await page.route('**/v1/events', async (route) => {
    sent.push(JSON.parse(route.request().postData()).events.map((e) => e.type));
    await new Promise((r) => setTimeout(r, 800)); // a slow network
    return route.continue();
  });
  await page.evaluate(() => window.etalage.track('cart_add', { sku: 'a', price: 1 }));
  await page.waitForTimeout(300); // the scheduled flush is on its way
  const stored = await page.evaluate(() => window.etalage.flush().then(() => localStorage.getItem('etalage:q')));
  assert.equal(stored, '[]', 'when flush() resolves, the batch on its way is stored');
  await page.waitForTimeout(300);
  assert.deepEqual(sent, [['cart_add']], 'the cart_add went once');
  await context.close();
});

test('a late answer swaps only slots that ask for it', async () => {
  const { context, page } = await newPage();
  await page.route('**/demo/', async (route) => {
    const r = await route.fetch();
    const body = (await r.text()).replace('data-etalage-slot="banner-top"', 'data-etalage-slot="banner-top" data-etalage-late="swap"');
    await route.fulfill({ response: r, body });
  });
  await page.route('**/v1/decide', async (route) => { await new Promise((r) => setTimeout(r, 700)); await route.continue(); });
  await visit(page, '/demo/');
  assert.equal(await page.getAttribute('[data-etalage-slot="banner-top"]', 'data-etalage-block'), 'banner-default');
  assert.equal(await page.getAttribute('[data-etalage-slot="home-hero"]', 'data-etalage-block'), null);
  await context.close();
});

test('filling the slots does not shift the layout', async () => {
  const { context, page } = await newPage();
  await page.addInitScript(() => {
    window.__cls = 0;
    new PerformanceObserver((l) => { for (const e of l.getEntries()) if (!e.hadRecentInput) window.__cls += e.value; })
      .observe({ type: 'layout-shift', buffered: true });
  });
  for (let i = 0; i < 3; i++) await visit(page, '/demo/c/sneakers');
  await visit(page, '/demo/');
  await page.waitForTimeout(300);
  const cls = await page.evaluate(() => window.__cls);
  assert.ok(cls < 0.1, `cumulative layout shift ${cls} (good is under 0.1)`);
  await context.close();
});

test('data-consent="required" sends no behaviour before consent', async () => {
  const { context, page, decides } = await newPage();
  await page.route('**/demo/', async (route) => {
    const r = await route.fetch();
    await route.fulfill({ response: r, body: (await r.text()).replace('<script async src="/snippet.js">', '<script async src="/snippet.js" data-consent="required">') });
  });
  await visit(page, '/demo/');
  assert.deepEqual(JSON.parse(decides[0].postData()).events, [], 'no page view before consent');
  await page.evaluate(() => window.etalage.track('cart_add', { sku: 'x' }));
  assert.ok(!String(await page.evaluate(() => localStorage.getItem('etalage:q'))).includes('cart_add'), 'behaviour is not even queued');
  await page.evaluate(() => window.etalage.consent({ profiling: true }));
  await visit(page, '/demo/');
  assert.equal(JSON.parse(decides[1].postData()).events[0].type, 'page_view', 'after consent the page view goes');
  await context.close();
});

test('with the service down, slots keep their defaults and events wait for it', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/');
  await page.route('**/v1/**', (route) => route.abort('connectionrefused'));
  await page.goto(BASE + '/demo/c/sneakers');
  const res = await page.evaluate(() => window.etalage.ready);
  assert.equal(res, null, 'no decision');
  assert.equal(await page.getAttribute('[data-etalage-slot="banner-top"]', 'data-etalage-block'), null);
  const q = JSON.parse(await page.evaluate(() => localStorage.getItem('etalage:q')) || '[]');
  assert.ok(Array.isArray(q));
  await page.evaluate(() => window.etalage.track('cart_add', { sku: 'x', category: 'sneakers' }));
  await page.waitForTimeout(200);
  assert.ok((await page.evaluate(() => localStorage.getItem('etalage:q'))).includes('cart_add'), 'kept for later');
  await page.unroute('**/v1/**');
  const sent = page.waitForRequest((r) => r.url().endsWith('/v1/decide') && r.postData().includes('cart_add'));
  await page.goto(BASE + '/demo/');
  await sent;
  await context.close();
});

test('experiments go to the dataLayer, and a click in a slot is reported for its block', async () => {
  const { context, page } = await newPage();
  await page.addInitScript(() => { window.dataLayer = []; });
  await page.route('**/v1/decide', (route) => route.fulfill({
    status: 200, contentType: 'application/json',
    body: JSON.stringify({
      segments: [], degraded: false,
      blocks: { 'home-hero': { id: 'hero-bold', html: '<h1><a id="bold-link" href="#more">Alles</a></h1>' } },
      experiments: [{ id: 'holdout', variant: 'personalised' }, { id: 'hero-test', variant: 'bold' }],
    }),
  }));
  await visit(page, '/demo/');
  const dl = await page.evaluate(() => window.dataLayer);
  assert.deepEqual(dl.filter((e) => e.event === 'experiment_viewed'), [
    { event: 'experiment_viewed', experiment_id: 'holdout', variant_id: 'personalised' },
    { event: 'experiment_viewed', experiment_id: 'hero-test', variant_id: 'bold' },
  ]);
  const events = page.waitForRequest((r) => r.url().endsWith('/v1/events') && r.postData().includes('block:hero-bold'), { timeout: 30000 });
  await page.click('#bold-link');
  const body = JSON.parse((await events).postData());
  assert.ok(body.events.some((e) => e.type === 'click' && e.target === 'block:hero-bold'), JSON.stringify(body));
  await context.close();
});

test('without a dataLayer nothing is created', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/');
  assert.equal(await page.evaluate(() => typeof window.dataLayer), 'undefined');
  await context.close();
});

async function me(page) { return (await page.request.get(BASE + '/demo/api/me')).json(); }
async function queue(page) { return JSON.parse(await page.evaluate(() => localStorage.getItem('etalage:q')) || '[]'); }

for (const [how, fail] of [
  ['no answer', (route) => route.abort('connectionrefused')],
  ['429', (route) => route.fulfill({ status: 429, headers: { 'Retry-After': '1' }, contentType: 'application/json', body: '{"error":{"code":"rate_limited","message":"slow down"}}' })],
  ['503', (route) => route.fulfill({ status: 503, headers: { 'Retry-After': '1' }, contentType: 'application/json', body: '{"error":{"code":"unavailable","message":"down"}}' })],
  ['500', (route) => route.fulfill({ status: 500, contentType: 'application/json', body: '{"error":{"code":"internal","message":"internal error"}}' })],
]) {
  test(`the page view of a decide that fails (${how}) is retried through /v1/events`, async () => {
    const { context, page } = await newPage();
    await visit(page, '/demo/'); // a visitor with a cookie
    await page.route('**/v1/decide', fail);
    const delivered = page.waitForRequest((r) => r.url().endsWith('/v1/events') && r.postData().includes('/demo/c/running'), { timeout: 30000 });
    await page.goto(BASE + '/demo/c/running');
    await page.waitForFunction(() => window.etalage && window.etalage.ready);
    assert.equal(await page.evaluate(() => window.etalage.ready), null, 'no decision');
    const req = await delivered;
    assert.equal((await req.response()).status(), 202);
    const views = JSON.parse(req.postData()).events.filter((e) => e.type === 'page_view' && e.url === '/demo/c/running');
    assert.equal(views.length, 1, 'the page view once');
    await page.waitForFunction(() => localStorage.getItem('etalage:q') === '[]');
    const p = await me(page);
    assert.ok(p.profile.primary.behaviour.some((c) => c.event === 'page_view' && c.url === '/demo/c/running'), 'stored');
    await context.close();
  });
}

test('a batch rejected for one event drops that event alone and delivers the rest', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/');
  await page.route('**/v1/events', (route) => route.abort());
  await page.evaluate(() => {
    window.etalage.track('interest', { name: 'first' });
    window.etalage.track('cart_add', { sku: 42 }); // not a string: the service refuses it
    window.etalage.track('interest', { name: 'last' });
  });
  await page.waitForTimeout(150); // queued together, the flush failed
  assert.equal((await queue(page)).length, 3);
  await page.unroute('**/v1/events');
  const rejected = page.waitForResponse((r) => r.url().endsWith('/v1/events') && r.status() === 400);
  const delivered = page.waitForResponse((r) => r.url().endsWith('/v1/events') && r.status() === 202);
  await page.evaluate(() => window.etalage.flush());
  const body = await (await rejected).json();
  assert.equal(body.error.event, 1, 'the answer names the bad event');
  assert.equal(body.error.path, 'events[1].sku');
  const sent = JSON.parse((await delivered).request().postData()).events;
  assert.deepEqual(sent.map((e) => e.name || e.sku), ['first', 'last'], 'the valid events go again, the bad one not');
  await page.waitForFunction(() => localStorage.getItem('etalage:q') === '[]');
  const p = await me(page);
  assert.ok(p.profile.primary.interests.first && p.profile.primary.interests.last, JSON.stringify(p.profile.primary.interests));
  await context.close();
});

test('a rejection that names no event is narrowed down one event at a time', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/');
  // On a loaded machine the page view may have come back degraded and be
  // queued: start from an empty queue, so the batch is exactly the three.
  await page.waitForFunction(() => (localStorage.getItem('etalage:q') || '[]') === '[]', null, { timeout: 30000 });
  const abort = (route) => route.abort();
  await page.route('**/v1/events', abort);
  const aborted = page.waitForEvent('requestfailed', (r) => r.url().endsWith('/v1/events'));
  await page.evaluate(() => {
    window.etalage.track('interest', { name: 'one' });
    window.etalage.track('cart_add', { sku: 42 });
    window.etalage.track('interest', { name: 'two' });
  });
  await aborted; // queued together, the flush failed
  await page.waitForTimeout(200); // and the snippet has set its retry timer, which flush() below clears
  let first = true;
  const batches = [];
  // The new route is added before the old one goes (the newest route
  // wins), so no request reaches the service in between.
  await page.route('**/v1/events', (route) => {
    batches.push(JSON.parse(route.request().postData()).events.length);
    if (first) { first = false; return route.fulfill({ status: 400, contentType: 'application/json', body: '{"error":{"code":"invalid","message":"bad request"}}' }); }
    return route.continue();
  });
  await page.unroute('**/v1/events', abort);
  await page.evaluate(() => window.etalage.flush());
  await page.waitForFunction(() => localStorage.getItem('etalage:q') === '[]', null, { timeout: 30000 });
  assert.deepEqual(batches, [3, 1, 1, 1], 'the batch, then one by one');
  const p = await me(page);
  assert.ok(p.profile.primary.interests.one && p.profile.primary.interests.two, JSON.stringify(p.profile.primary.interests));
  await context.close();
});

test('a decide refused for a queued event keeps the page view and the other events', async () => {
  const { context, page } = await newPage();
  await visit(page, '/demo/');
  await page.route('**/v1/events', (route) => route.abort());
  await page.evaluate(() => {
    window.etalage.track('cart_add', { sku: 42 });
    window.etalage.track('interest', { name: 'kept' });
  });
  await page.waitForTimeout(150);
  await page.unroute('**/v1/events');
  const refused = page.waitForResponse((r) => r.url().endsWith('/v1/decide') && r.status() === 400);
  const delivered = page.waitForRequest((r) => r.url().endsWith('/v1/events') && r.postData().includes('/demo/c/toys'), { timeout: 30000 });
  await page.goto(BASE + '/demo/c/toys');
  assert.equal((await (await refused).json()).error.event, 1, 'the page view is events[0], the bad queued event events[1]');
  const sent = JSON.parse((await delivered).postData()).events;
  assert.deepEqual(sent.map((e) => e.type).sort(), ['interest', 'page_view']);
  await page.waitForFunction(() => localStorage.getItem('etalage:q') === '[]');
  const p = await me(page);
  assert.ok(p.profile.primary.interests.kept);
  // The toys page carries data-etalage-category="toys": in November its
  // page view goes to the Sinterklaas profile, else to the primary one.
  const profiles = [p.profile.primary, ...Object.values(p.profile.seasonal || {})];
  assert.ok(profiles.some((q) => q.behaviour.some((c) => c.event === 'page_view' && c.url === '/demo/c/toys')));
  await context.close();
});

// The demo as a newcomer tries it: every step changes what the page shows.

test('demo: page views carry the category and product from data attributes', async () => {
  const { context, page, decides } = await demoPage();
  await visit(page, '/demo/c/toys');
  await visit(page, '/demo/p/board-game');
  const pv = (i) => JSON.parse(decides[i].postData()).events.find((e) => e.type === 'page_view');
  assert.deepEqual(pv(0), { type: 'page_view', url: '/demo/c/toys', category: 'toys' });
  assert.deepEqual(pv(1), { type: 'page_view', url: '/demo/p/board-game', category: 'toys', sku: 'board-game' });
  await visit(page, '/demo/c/toys');
  const res = await visit(page, '/demo/');
  assert.ok(res.segments.includes('toy-fans'), 'three toy pages make a toy fan: ' + res.segments);
  assert.ok(res.segments.includes('sint-browsers'));
  assert.equal(await page.getAttribute('[data-etalage-slot="banner-top"]', 'data-etalage-block'), 'sint-teaser');
  await context.close();
});

test('demo: sneakers change the hero and the "Voor jou" picks show their products', async () => {
  const { context, page } = await demoPage();
  await visit(page, '/demo/');
  await shot(page, 'demo-0-newcomer-home');
  for (let i = 0; i < 3; i++) await visit(page, '/demo/c/sneakers');
  await visit(page, '/demo/');
  assert.equal(await page.getAttribute('[data-etalage-slot="home-hero"]', 'data-etalage-block'), 'hero-sneakers');
  assert.match(await page.textContent('[data-etalage-slot="home-hero"]'), /Nieuwe sneakers voor je, sneakerfan/);
  await page.waitForSelector('[data-etalage-slot="home-picks"] .card');
  const picks = await page.$$eval('[data-etalage-slot="home-picks"] .card .name', (els) => els.map((e) => e.textContent));
  assert.deepEqual(picks, ['Air sneaker (maat 45)', 'Court sneaker'], 'the data-only block is drawn from its data');
  const img = await page.$eval('[data-etalage-slot="home-picks"] .card img', (i) => ({ ok: i.complete && i.naturalWidth > 0, src: i.getAttribute('src') }));
  assert.ok(img.ok, 'product images load from the binary: ' + img.src);
  await page.waitForFunction(() => document.querySelector('#why').textContent.includes('sneaker-fans'));
  const why = await page.textContent('#why');
  assert.match(why, /you see “Nieuwe sneakers voor je, …” \(hero-sneakers\) because you are in segment sneaker-fans/);
  assert.match(why, /“Welkom bij De Etalage” \(hero-default\) lost on priority/);
  assert.equal(await page.isVisible('#me'), false, 'the JSON waits behind its toggle');
  assert.equal(await page.isVisible('#notice'), false, 'no warning for an ordinary browser');
  await shot(page, 'demo-1-sneaker-fan');
  await context.close();
});

test('demo: adding to the cart changes the page at once', async () => {
  const { context, page } = await demoPage();
  await visit(page, '/demo/p/sneaker-air-45');
  await page.click('#add');
  await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '1');
  await visit(page, '/demo/');
  assert.equal(await page.getAttribute('[data-etalage-slot="home-cart"]', 'data-etalage-block'), 'cart-big');
  assert.match(await page.textContent('[data-etalage-slot="home-cart"]'), /Gratis verzending/);
  await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '1');
  await shot(page, 'demo-2-cart');
  await context.close();
});

test('demo: a Sinterklaas gift brings the banner, the newsletter a thank-you', async () => {
  const { context, page } = await demoPage();
  await visit(page, '/demo/p/playmobil-sint');
  await page.check('#gift');
  await page.click('#buy');
  await page.evaluate(() => window.etalage.flush());
  await visit(page, '/demo/');
  assert.equal(await page.getAttribute('[data-etalage-slot="banner-top"]', 'data-etalage-block'), 'sint-banner');
  await page.fill('#nl-name', 'Anna');
  await page.click('#newsletter-signup');
  await page.evaluate(() => window.etalage.flush());
  await visit(page, '/demo/');
  assert.equal(await page.getAttribute('[data-etalage-slot="home-newsletter"]', 'data-etalage-block'), 'newsletter-thanks');
  assert.match(await page.textContent('[data-etalage-slot="home-newsletter"]'), /Je bent aangemeld, Anna!/);
  await shot(page, 'demo-3-sint-and-newsletter');
  await context.close();
});

test('demo: signing in greets with the name', async () => {
  const { context, page } = await demoPage();
  await visit(page, '/demo/account');
  await page.fill('#email', 'sam@example.com');
  await page.fill('#first_name', 'Sam');
  await page.click('#login');
  await page.waitForFunction(() => document.querySelector('#note').textContent.includes('sam@example.com'));
  await page.evaluate(() => window.etalage.flush());
  await visit(page, '/demo/');
  assert.equal(await page.getAttribute('[data-etalage-slot="greeting"]', 'data-etalage-block'), 'greeting-named');
  assert.equal((await page.textContent('[data-etalage-slot="greeting"]')).trim(), 'Hallo Sam');
  await shot(page, 'demo-4-signed-in');
  await context.close();
});

test('demo: a browser taken for a bot is told so on the page', async () => {
  const context = await browser.newContext(); // headless Chromium's own user agent
  const page = await context.newPage();
  await page.goto(BASE + '/demo/');
  await page.waitForSelector('#notice:not([hidden])');
  assert.match(await page.textContent('#notice'), /takes this browser for a bot/);
  await shot(page, 'demo-5-bot-notice');
  await context.close();
});

// The Pretend bar (serve --dev; the test server has it on): clicking a
// moment or "a phone in NL" reloads the page pretending it, so each time-
// and device-dependent segment is reached by clicking. The test clock is
// Tuesday 24 November 2026, 13:00 in Amsterdam.
async function pretendClick(page, id) {
  await page.waitForSelector('#pretend #' + id);
  await Promise.all([page.waitForEvent('load'), page.click('#' + id)]);
  await page.waitForFunction(() => window.etalage && window.etalage.ready);
  const res = await page.evaluate(() => window.etalage.ready);
  // The bar's status comes from /demo/api/me after the decide.
  await page.waitForFunction(() => document.querySelector('#pretend-status') && document.querySelector('#pretend-status').textContent !== '');
  return res;
}

async function moment(page) {
  return { block: await page.getAttribute('[data-etalage-slot="home-moment"]', 'data-etalage-block'), text: await page.textContent('[data-etalage-slot="home-moment"]') };
}

test('demo: pretending Saturday, an evening and a phone changes the "Vandaag" box', async () => {
  const { context, page } = await demoPage();
  await visit(page, '/demo/');
  await page.waitForSelector('#pretend-status');
  assert.match(await page.textContent('#pretend-status'), /Not pretending/);
  assert.equal((await moment(page)).block, null, 'a Tuesday lunchtime on a computer: the default');

  let res = await pretendClick(page, 'pretend-saturday-morning');
  assert.ok(res.segments.includes('weekend'), res.segments.join());
  let m = await moment(page);
  assert.equal(m.block, 'moment-weekend');
  assert.match(m.text, /Weekendactie/);
  assert.match(await page.textContent('#pretend-status'), /Pretending: it is Saturday,? 28 November 2026(,| at) 11:00/);
  await shot(page, 'demo-6-pretend-saturday');

  res = await pretendClick(page, 'pretend-weekday-evening');
  assert.ok(res.segments.includes('evening') && !res.segments.includes('weekend'), res.segments.join());
  m = await moment(page);
  assert.equal(m.block, 'moment-evening');
  assert.match(m.text, /Avondshoppen/);
  assert.match(await page.textContent('#pretend-status'), /Monday,? 30 November 2026(,| at) 20:30/);
  await shot(page, 'demo-7-pretend-evening');

  res = await pretendClick(page, 'pretend-phone');
  assert.ok(res.segments.includes('mobile-nl'), res.segments.join());
  m = await moment(page);
  assert.equal(m.block, 'moment-phone');
  assert.match(m.text, /Op je telefoon/);
  assert.equal(await page.getAttribute('#pretend-phone', 'aria-pressed'), 'true');
  assert.match(await page.textContent('#pretend-status'), /on a phone set to Dutch/);
  await page.waitForFunction(() => document.querySelector('#why').textContent.includes('mobile-nl'));
  await shot(page, 'demo-8-pretend-phone');

  res = await pretendClick(page, 'pretend-stop');
  for (const s of ['weekend', 'evening', 'mobile-nl']) assert.ok(!res.segments.includes(s), res.segments.join());
  assert.match(await page.textContent('#pretend-status'), /Not pretending/);
  await context.close();
});

test('demo: coming back tomorrow says welcome back, and the cart waits', async () => {
  const { context, page } = await demoPage();
  await visit(page, '/demo/p/sneaker-court');
  await page.click('#add');
  await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '1');
  await visit(page, '/demo/');
  assert.equal(await page.getAttribute('[data-etalage-slot="home-cart"]', 'data-etalage-block'), 'cart-items');
  assert.equal((await moment(page)).block, null);

  const res = await pretendClick(page, 'pretend-tomorrow');
  for (const s of ['returning-visitors', 'not-yet-buyers', 'cart-abandoners']) assert.ok(res.segments.includes(s), s + ' in ' + res.segments.join());
  const m = await moment(page);
  assert.equal(m.block, 'moment-come-back');
  assert.match(m.text, /Welkom terug!.*TERUG5/);
  assert.equal(await page.getAttribute('[data-etalage-slot="home-cart"]', 'data-etalage-block'), 'cart-waiting');
  assert.match(await page.textContent('[data-etalage-slot="home-cart"]'), /wacht nog op je/);
  assert.equal(await page.getAttribute('[data-etalage-slot="banner-top"]', 'data-etalage-block'), 'cart-reminder');
  await shot(page, 'demo-9-come-back-tomorrow');
  await context.close();
});

test('demo: a gift put in the cart on 10 December is a Christmas present', async () => {
  const { context, page } = await demoPage();
  await visit(page, '/demo/p/playmobil-sint');
  await pretendClick(page, 'pretend-december-10');
  assert.match(await page.textContent('#pretend-status'), /Thursday,? 10 December 2026(,| at) 12:00/);
  await page.check('#gift');
  await page.click('#add');
  await page.waitForFunction(() => document.querySelector('#cart-count').textContent === '1');
  const res = await visit(page, '/demo/');
  assert.ok(res.segments.includes('christmas-shoppers'), res.segments.join());
  const m = await moment(page);
  assert.equal(m.block, 'moment-christmas');
  assert.match(m.text, /kerstcadeau/);
  await shot(page, 'demo-10-christmas');
  await context.close();
});
