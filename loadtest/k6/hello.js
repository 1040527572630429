// The baseline: a fasthttp handler returning a fixed 300-byte JSON body.
import http from 'k6/http';
import { check } from 'k6';
import { BASE, HEADERS, scenario } from './common.js';

export const options = {
  scenarios: scenario('hello'),
  thresholds: {
    'http_reqs{scenario:hello}': ['count>0'],
    'http_req_duration{scenario:hello}': ['p(99)<100'],
    http_req_failed: ['rate<0.001'],
  },
};

export function hello() {
  const r = http.post(BASE + '/v1/decide', '{}', { headers: HEADERS });
  check(r, { '200': (x) => x.status === 200 });
}
