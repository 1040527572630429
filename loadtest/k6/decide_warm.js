// Warm decide: each virtual user is one returning visitor whose profile is
// in the service's cache; 3 slots on the demo definitions (26 segments,
// nested segments, behaviour counts).
import http from 'k6/http';
import { check } from 'k6';
import { BASE, HEADERS, SLOTS, VUS, newVisitors, scenario } from './common.js';

export const options = {
  scenarios: scenario('decide'),
  thresholds: {
    'http_reqs{scenario:decide}': ['count>0'],
    http_req_failed: ['rate<0.001'],
    'http_req_duration{scenario:decide}': ['p(99)<' + (__ENV.P99_MS || '20')],
    checks: ['rate>0.999'],
  },
  setupTimeout: '120s',
};

export function setup() { return { visitors: newVisitors(VUS) }; }

export function decide(data) {
  const v = data.visitors[(__VU - 1) % data.visitors.length];
  const r = http.post(BASE + '/v1/decide', JSON.stringify({ visitor: v, slots: SLOTS, context: { url: '/demo/' } }), { headers: HEADERS });
  check(r, {
    '200': (x) => x.status === 200,
    'personalised': (x) => x.body.indexOf('"hero-sneakers') > 0 && x.body.indexOf('"degraded":false') > 0,
  });
}
