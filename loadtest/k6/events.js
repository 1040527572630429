// Event ingestion: batches of 5 events per request, each acknowledged with
// 202 only once stored. Events per second = 5 × requests per second.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { BASE, HEADERS, newVisitors, scenario, VUS } from './common.js';

const accepted = new Counter('events_accepted');

export const options = {
  scenarios: scenario('ingest'),
  thresholds: {
    'http_reqs{scenario:ingest}': ['count>0'],
    http_req_failed: ['rate<0.001'],
    'http_req_duration{scenario:ingest}': ['p(99)<' + (__ENV.P99_MS || '50')],
    checks: ['rate>0.999'],
  },
  setupTimeout: '120s',
};

export function setup() { return { visitors: newVisitors(VUS * 4) }; }

export function ingest(data) {
  const v = data.visitors[Math.floor(Math.random() * data.visitors.length)];
  const n = Math.floor(Math.random() * 1000);
  const body = JSON.stringify({ visitor: v, events: [
    { type: 'page_view', url: '/demo/c/running' },
    { type: 'page_view', url: '/demo/p/trail-runner-' + n },
    { type: 'click', target: 'add-to-cart', url: '/demo/p/trail-runner' },
    { type: 'cart_add', sku: 'trail-runner', category: 'running', price: 119 },
    { type: 'email_open', campaign: 'winter-' + (n % 10) },
  ] });
  const r = http.post(BASE + '/v1/events', body, { headers: HEADERS });
  const ok = check(r, { '202 with all 5': (x) => x.status === 202 && x.json('accepted') === 5 });
  if (ok) accepted.add(5);
}
