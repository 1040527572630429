// Cold decide: many distinct visitors, the service started with
// --cache-size 0, so every request reads the profile from the store.
import http from 'k6/http';
import { check } from 'k6';
import { BASE, HEADERS, SLOTS, newVisitors, scenario } from './common.js';

const N = parseInt(__ENV.VISITORS || '2000', 10);

export const options = {
  scenarios: scenario('decide'),
  thresholds: {
    'http_reqs{scenario:decide}': ['count>0'],
    http_req_failed: ['rate<0.001'],
    'http_req_duration{scenario:decide}': ['p(99)<' + (__ENV.P99_MS || '30')],
    checks: ['rate>0.999'],
  },
  setupTimeout: '300s',
};

export function setup() { return { visitors: newVisitors(N) }; }

export function decide(data) {
  const v = data.visitors[Math.floor(Math.random() * data.visitors.length)];
  const r = http.post(BASE + '/v1/decide', JSON.stringify({ visitor: v, slots: SLOTS, context: { url: '/demo/' } }), { headers: HEADERS });
  check(r, {
    '200': (x) => x.status === 200,
    'personalised': (x) => x.body.indexOf('"hero-sneakers') > 0 && x.body.indexOf('"degraded":false') > 0,
  });
}
