// Shared by the scenarios: the base URL, a browser user agent (k6's own is
// not a visitor), and creating visitors through the public API as a shop's
// traffic would.
import http from 'k6/http';

export const BASE = __ENV.BASE || 'http://127.0.0.1:8080';
export const VUS = parseInt(__ENV.VUS || '64', 10);
export const DURATION = __ENV.DURATION || '10s';
export const HEADERS = {
  'Content-Type': 'application/json',
  'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
};
export const SLOTS = ['home-hero', 'banner-top', 'home-picks'];

// scenario runs flat out with VUS connections, or, with RATE set, at RATE
// requests per second over at most VUS connections: below the load
// generator's own saturation, so latency is the server's, not k6's queue.
export function scenario(exec) {
  if (__ENV.RATE) {
    return { [exec]: { executor: 'constant-arrival-rate', rate: parseInt(__ENV.RATE, 10), timeUnit: '1s', duration: DURATION, preAllocatedVUs: VUS, maxVUs: VUS, exec } };
  }
  return { [exec]: { executor: 'constant-vus', vus: VUS, duration: DURATION, exec } };
}

// Requests name their visitor in the body, as a shop backend does; the
// cookie jar stays out of it.
export const NOJAR = { headers: HEADERS, jar: null };

// newVisitors creates n visitors with some behaviour (sneaker views, a cart)
// and returns their visitor values.
export function newVisitors(n) {
  const out = [];
  for (let i = 0; i < n; i += 50) {
    const reqs = [];
    for (let j = i; j < Math.min(n, i + 50); j++) {
      reqs.push(['POST', BASE + '/v1/events', JSON.stringify({ events: [
        { type: 'page_view', url: '/demo/c/sneakers' },
        { type: 'page_view', url: '/demo/c/sneakers' },
        { type: 'page_view', url: '/demo/c/sneakers' },
        { type: 'page_view', url: '/demo/p/sneaker-air-45' },
        { type: 'cart_add', sku: 'sneaker-air-45', category: 'sneakers', price: 129.95 },
      ] }), { headers: HEADERS, jar: new http.CookieJar() }]); // each its own visitor
    }
    for (const r of http.batch(reqs)) {
      if (r.status !== 202) throw new Error('creating a visitor: ' + r.status + ' ' + r.body);
      // Browsers never get the visitor value in a body: it is the cookie.
      out.push(r.cookies.etl[0].value);
    }
  }
  return out;
}
