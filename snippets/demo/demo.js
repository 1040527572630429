// Demo shop helpers: buttons call the snippet's API; the side panel shows
// what etalage knows about this browser (GET /demo/api/me).
window.etalage = window.etalage || [];
function call() { var a = [].slice.call(arguments); if (window.etalage.ready) window.etalage[a[0]].apply(window.etalage, a.slice(1)); else window.etalage.push(a); }
function addToCart(sku, category, price) {
  var gift = document.getElementById('gift');
  call('track', 'cart_add', { sku: sku, category: category, price: price, gift: !!(gift && gift.checked) });
  note('Added ' + sku + ' to the cart');
}
function buy(sku, category, price) {
  var gift = document.getElementById('gift');
  call('track', 'purchase', { order_id: 'demo-' + Date.now(), items: [{ sku: sku, category: category, price: price, gift: !!(gift && gift.checked) }] });
  note('Bought ' + sku);
}
// signIn stands for a shop's login: the shop backend (here the demo-only
// /demo/api/token, which signs example addresses only) issues an identity
// token, and identify carries it, so the service joins the contact.
function signIn(form) {
  var email = form.email.value, fields = form.first_name.value ? { first_name: form.first_name.value } : undefined;
  fetch('/demo/api/token', { method: 'POST', credentials: 'include', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: email }) })
    .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error ? j.error.message : 'sign-in failed'); return j.token; }); })
    .then(function (token) { call('identify', email, fields, token); note('Signed in as ' + email); })
    .catch(function (e) { note(String(e.message || e)); });
  return false;
}
function logout() { window.etalage.reset().then(function () { note('Logged out: a new visitor'); refresh(); }); }
function consent(on) { call('consent', { profiling: on }); note(on ? 'Consent given' : 'Consent withdrawn'); }
function note(t) { var n = document.getElementById('note'); if (n) n.textContent = t; setTimeout(refresh, 300); }
function refresh() {
  var el = document.getElementById('me');
  if (!el) return;
  var flush = window.etalage.flush ? window.etalage.flush() : Promise.resolve();
  flush.then(function () { return fetch('/demo/api/me', { credentials: 'include' }); })
    .then(function (r) { return r.json(); })
    .then(function (j) { el.textContent = JSON.stringify(j, null, 2); })
    .catch(function (e) { el.textContent = String(e); });
}
window.addEventListener('load', function () { (window.etalage.ready || Promise.resolve()).then(refresh); });
