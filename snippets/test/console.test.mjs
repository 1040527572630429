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

// The block report view: numbers read from the page against /admin/v1/report.
const reportDoc = `segments:
  - id: sneaker-fans
    rule: {interest: sneakers}
blocks:
  - {id: report-hero, slot: home-hero, html: '<h2><a id="report-link" href="#more">Kijk verder</a></h2>'}
  - {id: report-banner, slot: banner-top, html: '<p>Gratis verzending</p>'}
`;
const reportLines = (rep, id) => rep.days.flatMap((d) => d.blocks).filter((l) => l.id === id);
const num = (s) => Number(s.replace(/,/g, ''));
// cells reads a row's served, visitors, clicks and click-through rate as the page shows them.
const cells = (row) => row.$$eval('td', (tds) => tds.map((td) => (td.querySelector('.ctr-text') || td).textContent));
function countsOf(texts) {
  const [served, visitors, clicks, ctr] = texts.slice(2);
  const v = visitors.split('–').map(num);
  return { served: num(served), visitors: v.length === 1 ? [v[0], v[0]] : v, clicks: num(clicks), ctr };
}
const ctrText = (clicks, served) => (served > 0 ? ((clicks / served) * 100).toFixed(2) + '%' : '—');
function expectedTotals(lines) {
  const served = lines.reduce((a, l) => a + l.served, 0), clicks = lines.reduce((a, l) => a + l.clicks, 0);
  return { served, clicks, visitors: [Math.max(0, ...lines.map((l) => l.visitors)), lines.reduce((a, l) => a + l.visitors, 0)], ctr: ctrText(clicks, served) };
}

test('console: Blocks shows each block served, visitors, clicks and CTR per range and per day, as /admin/v1/report counts them', async () => {
  const cur = (await api('GET', '/admin/v1/definitions')).json;
  const put = await api('PUT', '/admin/v1/definitions?note=block+report', reportDoc, { 'If-Match': `"${cur.revision}"`, 'Content-Type': 'application/yaml' });
  assert.equal(put.status, 200, JSON.stringify(put.json));

  // Two shoppers: one sees the homepage three times and clicks the hero's link, one sees it once.
  // On a loaded machine a decide can outlast the snippet's 400 ms, after which the hero keeps its
  // default and has no link to click: the pages get a generous data-timeout, as in browser.test.mjs.
  const shopper = async () => {
    const context = await browser.newContext({ userAgent: UA });
    await context.route('**/demo/**', async (route) => {
      if (route.request().resourceType() !== 'document') return route.continue();
      const r = await route.fetch();
      await route.fulfill({ response: r, body: (await r.text()).replace('<script async src="/snippet.js">', '<script async src="/snippet.js" data-timeout="10000">') });
    });
    const page = await context.newPage();
    // Each decide as the browser saw it, for the failure message.
    page.on('response', async (r) => {
      if (!r.url().endsWith('/v1/decide')) return;
      const b = await r.json().catch(() => ({}));
      decides.push({ status: r.status(), degraded: b.degraded, cookie: b.cookie, hero: b.blocks && b.blocks['home-hero'] && b.blocks['home-hero'].id });
    });
    page.on('requestfailed', (r) => { if (r.url().endsWith('/v1/decide')) decides.push({ failed: r.failure() && r.failure().errorText }); });
    return [context, page];
  };
  const decides = [];
  const [a, ap] = await shopper();
  for (let i = 0; i < 3; i++) { await ap.goto(BASE + '/demo/'); await ap.evaluate(() => window.etalage.ready); }
  assert.equal(await ap.getAttribute('[data-etalage-slot="home-hero"]', 'data-etalage-block'), 'report-hero', 'the demo serves the new hero');
  const clicked = ap.waitForResponse((r) => r.url().endsWith('/v1/events') && r.request().postData().includes('block:report-hero'), { timeout: 30000 });
  await ap.click('#report-link');
  assert.equal((await clicked).status(), 202);
  await a.close();
  const [b, bp] = await shopper();
  await bp.goto(BASE + '/demo/');
  await bp.evaluate(() => window.etalage.ready);
  await b.close();

  // The counts reach the store with the next flush (every 2 s).
  let rep;
  for (const until = Date.now() + 30000; Date.now() < until;) {
    rep = (await api('GET', '/admin/v1/report')).json;
    const h = reportLines(rep, 'report-hero'), bn = reportLines(rep, 'report-banner');
    if (h.length && h[0].clicks === 1 && h[0].served === 4 && bn.length && bn[0].served === 4) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.deepEqual(reportLines(rep, 'report-hero').map(({ served, visitors, clicks, ctr, slot }) => ({ served, visitors, clicks, ctr, slot })),
    [{ served: 4, visitors: 2, clicks: 1, ctr: 0.25, slot: 'home-hero' }], JSON.stringify({ decides, rep }));
  assert.deepEqual(reportLines(rep, 'report-banner').map(({ served, visitors, clicks }) => ({ served, visitors, clicks })), [{ served: 4, visitors: 2, clicks: 0 }]);

  const { context, page, errors } = await signedIn();
  const csp = [];
  page.on('console', (m) => { if (/Content Security Policy/i.test(m.text())) csp.push(m.text()); });
  await page.click('a[href="#blocks"]');
  await page.waitForSelector('#bl-blocks');
  assert.equal(await page.inputValue('#bl-from'), rep.from, 'the range is the server\'s last seven days');
  assert.equal(await page.inputValue('#bl-to'), rep.to);
  assert.equal(rep.days.length, 7);

  // Per block over the range, every block of the report, in CTR order.
  const ids = [...new Set(rep.days.flatMap((d) => d.blocks.map((l) => l.id)))];
  const rows = await page.$$('#bl-blocks tbody tr');
  assert.equal(rows.length, ids.length);
  const shown = [];
  for (const row of rows) {
    const id = await row.getAttribute('data-block'), t = await cells(row);
    assert.equal(t[0], id);
    assert.deepEqual(countsOf(t), expectedTotals(reportLines(rep, id)), 'block ' + id);
    shown.push({ id, ctr: t[5] === '—' ? -1 : parseFloat(t[5]) });
  }
  const hero = await cells(await page.$('#bl-blocks tbody tr[data-block="report-hero"]'));
  assert.deepEqual(hero.slice(1), ['home-hero', '4', '2', '1', '25.00%'], 'the hero as counted');
  for (let i = 1; i < shown.length; i++) assert.ok(shown[i - 1].ctr >= shown[i].ctr, 'sorted by CTR: ' + JSON.stringify(shown));
  assert.ok(shown.findIndex((s) => s.id === 'report-hero') < shown.findIndex((s) => s.id === 'report-banner'));
  assert.deepEqual(countsOf(await cells(await page.$('#bl-blocks tfoot tr'))), expectedTotals(rep.days.flatMap((d) => d.blocks)), 'all blocks');

  // Per day: a total per day, and each block's line as the report has it.
  for (const d of rep.days) {
    const group = await page.$(`#bl-days tbody[data-day="${d.day}"]`);
    assert.ok(group, 'day ' + d.day);
    assert.deepEqual(countsOf(await cells(await group.$('tr.total'))), expectedTotals(d.blocks), 'total of ' + d.day);
    const lines = await group.$$('tr[data-block]');
    assert.equal(lines.length, d.blocks.length);
    for (const l of d.blocks) {
      const t = await cells(await group.$(`tr[data-block="${l.id}"]`));
      assert.deepEqual(countsOf(t), { served: l.served, visitors: [l.visitors, l.visitors], clicks: l.clicks, ctr: l.ctr == null ? '—' : (l.ctr * 100).toFixed(2) + '%' }, d.day + ' ' + l.id);
      assert.equal(t[1], l.slot || '—');
    }
  }
  await shot(page, 'console-7-blocks');

  // Sorted by block instead: ids in order, and the choice kept in the address.
  await page.selectOption('#bl-sort', 'block');
  const byID = await page.$$eval('#bl-blocks tbody tr', (l) => l.map((e) => e.getAttribute('data-block')));
  assert.deepEqual(byID, [...ids].sort());
  assert.match(page.url(), /#blocks\?.*sort=block/);

  // One day, from an address: only that day.
  await page.goto(ADMIN + `/admin/#blocks?from=${rep.to}&to=${rep.to}&sort=block`);
  await page.waitForFunction((d) => document.querySelectorAll('#bl-days tbody').length === 1 && document.querySelector('#bl-days tbody').dataset.day === d, rep.to);
  assert.equal(await page.inputValue('#bl-sort'), 'block');
  await page.goBack();
  await page.waitForFunction(() => document.querySelectorAll('#bl-days tbody').length === 7);
  assert.equal(await page.inputValue('#bl-from'), rep.from, 'back: the seven days again');

  // Nothing else counted meanwhile: the page and the report describe the same counts.
  assert.deepEqual((await api('GET', '/admin/v1/report')).json, rep);
  assert.deepEqual(errors, []);
  assert.deepEqual(csp, []);
  await context.close();
});

test('console: Blocks checks the range in the page and shows the server\'s error when it refuses one', async () => {
  const { context, page, errors } = await signedIn({ width: 390, height: 844 }); // a phone
  await page.click('a[href="#blocks"]');
  await page.waitForSelector('#bl-blocks, #bl-empty');
  const asked = [];
  page.on('request', (r) => { if (r.url().includes('/admin/v1/report')) asked.push(r.url()); });

  await page.fill('#bl-from', '2026-11-24');
  await page.fill('#bl-to', '2026-11-20');
  await page.click('#bl-form button');
  await page.waitForFunction(() => document.getElementById('bl-error').textContent.length > 0);
  assert.equal(await page.textContent('#bl-error'), 'To (2026-11-20) is before From (2026-11-24).');
  assert.deepEqual(asked, [], 'a range the page refuses is not sent');
  assert.equal(await page.$('#bl-blocks'), null, 'no numbers for another range stay on the page');

  // A quarter is the most the server reports: its error, word for word.
  const want = await api('GET', '/admin/v1/report?from=2026-01-01&to=2026-11-24');
  assert.equal(want.status, 400);
  await page.fill('#bl-from', '2026-01-01');
  await page.fill('#bl-to', '2026-11-24');
  await page.click('#bl-form button');
  await page.waitForFunction(() => document.getElementById('bl-error').textContent.includes('days'));
  assert.equal(await page.textContent('#bl-error'), want.json.error.message);
  assert.match(want.json.error.message, /span 328 days; a report covers at most 92/);
  assert.equal(asked.length, 1);
  assert.equal(await page.$('#bl-blocks'), null);
  await shot(page, 'console-8-blocks-refused');

  // A good range again clears the error.
  await page.fill('#bl-from', '2026-11-20');
  await page.click('#bl-form button');
  await page.waitForSelector('#bl-blocks, #bl-empty');
  assert.equal(await page.textContent('#bl-error'), '');
  assert.equal(await page.$$eval('#bl-days tbody', (l) => l.length), 5);
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1), 'no sideways scrolling on a phone');
  assert.ok(await page.$eval('#bl-blocks th:last-child', (th) => th.getBoundingClientRect().right <= window.innerWidth), 'the CTR column in view on a phone');
  await shot(page, 'console-9-blocks-phone');

  // A range from an address, which the page does not check: the server's error.
  const refused = await api('GET', '/admin/v1/report?from=2026-02-30');
  assert.equal(refused.status, 400);
  await page.goto(ADMIN + '/admin/#blocks?from=2026-02-30');
  await page.waitForFunction(() => document.getElementById('bl-error').textContent.includes('is not a date'));
  assert.equal(await page.textContent('#bl-error'), refused.json.error.message);
  assert.equal(await page.$('#bl-blocks'), null);
  assert.deepEqual(errors, []);
  await context.close();
});
