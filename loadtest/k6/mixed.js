// Mixed shop traffic: a page view with a decide on every page, cart adds on
// a quarter of them, a purchase on one in twenty, an identify on one in fifty.
// Each visitor is a browser: its own cookie jar, replaced by a new one (a new
// visitor) every 30 pages.
//
// BASES (comma-separated base URLs) spreads the requests round robin over
// several nodes, as a load balancer without stickiness does: a visitor's
// pages land on every node in turn (cookies do not depend on the port). Each
// request is tagged node:n1, n2, … so that the summary has figures per node.
// The counters *_acknowledged count the events of answers that were 200 and
// not degraded, so that the runner can look for every one of them in the
// store afterwards.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE, HEADERS, SLOTS, scenario } from './common.js';

const bases = (__ENV.BASES || BASE).split(',');
const P99 = 'p(99)<' + (__ENV.P99_MS || '50');

const thresholds = {
  'http_reqs{scenario:shop}': ['count>0'],
  http_req_failed: ['rate<0.001'],
  'http_req_duration{scenario:shop}': [P99],
  checks: ['rate>0.999'],
};
// A threshold on each node's submetrics puts them in the summary export.
bases.forEach((_, i) => {
  thresholds[`http_reqs{node:n${i + 1}}`] = ['count>0'];
  thresholds[`http_req_duration{node:n${i + 1}}`] = [P99];
});

export const options = { scenarios: scenario('shop'), thresholds };

const views = new Counter('views_acknowledged');
const carts = new Counter('carts_acknowledged');
const orders = new Counter('orders_acknowledged');

const pages = ['/demo/', '/demo/c/sneakers', '/demo/c/running', '/demo/c/toys', '/demo/p/sneaker-air-45', '/demo/p/playmobil-sint'];
let jar = null;
let page = 0;
let sent = 0;

export function shop() {
  if (page % 30 === 0) jar = new http.CookieJar(); // a new visitor now and then
  page++;
  const node = sent++ % bases.length;
  const url = pages[Math.floor(Math.random() * pages.length)];
  const events = [{ type: 'page_view', url }];
  const r = Math.random();
  if (r < 0.25) events.push({ type: 'cart_add', sku: 'sneaker-air-45', category: 'sneakers', price: 129.95 });
  if (r < 0.05) events.push({ type: 'purchase', order_id: `k6-${__VU}-${__ITER}`, items: [{ sku: 'playmobil-sint', category: 'toys', price: 39.99, gift: true }] });
  if (r < 0.02) events.push({ type: 'identify', email: `k6-${__VU}-${__ITER % 5}@example.nl` });
  const body = JSON.stringify({ slots: SLOTS, context: { url }, events });
  const res = http.post(bases[node] + '/v1/decide', body, { headers: HEADERS, jar, tags: { node: `n${node + 1}` } });
  const ok = check(res, { '200': (x) => x.status === 200, 'not degraded': (x) => x.json('degraded') === false });
  if (ok) {
    views.add(1);
    if (r < 0.25) carts.add(1);
    if (r < 0.05) orders.add(1);
  }
}
