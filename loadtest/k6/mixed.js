// Mixed shop traffic: a page view with a decide on every page, cart adds on
// a quarter of them, a purchase on one in twenty, an identify on one in fifty.
import http from 'k6/http';
import { check } from 'k6';
import { BASE, HEADERS, SLOTS, scenario } from './common.js';

export const options = {
  scenarios: scenario('shop'),
  thresholds: {
    'http_reqs{scenario:shop}': ['count>0'],
    http_req_failed: ['rate<0.001'],
    'http_req_duration{scenario:shop}': ['p(99)<' + (__ENV.P99_MS || '50')],
    checks: ['rate>0.999'],
  },
};

const pages = ['/demo/', '/demo/c/sneakers', '/demo/c/running', '/demo/c/toys', '/demo/p/sneaker-air-45', '/demo/p/playmobil-sint'];
let visitor = '';
let page = 0;

export function shop() {
  page++;
  if (page % 30 === 0) visitor = ''; // a new visitor now and then
  const url = pages[Math.floor(Math.random() * pages.length)];
  const events = [{ type: 'page_view', url }];
  const r = Math.random();
  if (r < 0.25) events.push({ type: 'cart_add', sku: 'sneaker-air-45', category: 'sneakers', price: 129.95 });
  if (r < 0.05) events.push({ type: 'purchase', order_id: `k6-${__VU}-${__ITER}`, items: [{ sku: 'playmobil-sint', category: 'toys', price: 39.99, gift: true }] });
  if (r < 0.02) events.push({ type: 'identify', email: `k6-${__VU}-${__ITER % 5}@example.nl` });
  const body = { slots: SLOTS, context: { url }, events };
  if (visitor) body.visitor = visitor;
  const res = http.post(BASE + '/v1/decide', JSON.stringify(body), { headers: HEADERS });
  const ok = check(res, { '200': (x) => x.status === 200, 'not degraded': (x) => x.json('degraded') === false });
  if (ok) visitor = res.json('visitor');
}
