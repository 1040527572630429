// The demo shop's own script: what a shop writes around the snippet. It
// renders data-only blocks itself (the "Voor jou" picks name products in
// their data), wires the buttons to the snippet's API, and shows what
// etalage knows about this browser, in words (GET /demo/api/me, demo only).
window.etalage = window.etalage || [];
function call() { var a = [].slice.call(arguments); if (window.etalage.ready) window.etalage[a[0]].apply(window.etalage, a.slice(1)); else window.etalage.push(a); }

// The catalogue is read when a block first needs it, so that it never
// competes with the snippet's decide for a connection.
var catalogueP = null;
function catalogue() {
  if (!catalogueP) catalogueP = fetch('/demo/products.json').then(function (r) { return r.json(); }).then(function (list) {
    var by = {}; list.forEach(function (p) { by[p.sku] = p; }); return by;
  });
  return catalogueP;
}

// A block's data is the shop's to draw: {skus: [...]} as product cards,
// {image: url} as an image under the block's html.
document.addEventListener('etalage:block', function (ev) {
  var slot = ev.target, data = ev.detail.data;
  if (!data) return;
  if (data.image) {
    var img = document.createElement('img');
    img.src = data.image; img.alt = ''; img.className = 'data-image';
    slot.insertBefore(img, slot.firstChild);
  }
  if (data.skus) {
    catalogue().then(function (by) {
      var grid = document.createElement('div');
      grid.className = 'grid';
      data.skus.forEach(function (sku) {
        var p = by[sku]; if (!p) return;
        var card = document.createElement('div'); card.className = 'card';
        var a = document.createElement('a'); a.href = '/demo/p/' + p.sku;
        var im = document.createElement('img'); im.src = p.image; im.alt = ''; im.width = 300; im.height = 240;
        var name = document.createElement('span'); name.className = 'name'; name.textContent = p.name;
        a.appendChild(im); a.appendChild(name);
        var price = document.createElement('span'); price.className = 'price'; price.textContent = '€ ' + p.price.toFixed(2);
        card.appendChild(a); card.appendChild(price);
        grid.appendChild(card);
      });
      // A data-only block has no html: its cards replace the default.
      if (ev.detail.html == null && !slot.getAttribute('data-demo-drawn')) slot.textContent = '';
      slot.setAttribute('data-demo-drawn', ev.detail.id);
      slot.appendChild(grid);
    });
  }
});

function note(t) { var n = document.getElementById('note'); if (n) n.textContent = t; setTimeout(refresh, 400); }
function giftChecked() { var g = document.getElementById('gift'); return !!(g && g.checked); }

function addToCart(sku, category, price) {
  call('track', 'cart_add', { sku: sku, category: category, price: price, gift: giftChecked() });
  note('In je mandje: ' + sku + (giftChecked() ? ' (cadeau)' : ''));
}
function buy(sku, category, price) {
  call('track', 'purchase', { order_id: 'demo-' + Date.now(), items: [{ sku: sku, category: category, price: price, gift: giftChecked() }] });
  note('Gekocht: ' + sku + (giftChecked() ? ' (cadeau)' : ''));
}
// signIn stands for a shop's login: the shop backend (here the demo-only
// /demo/api/token, which signs example addresses only) issues an identity
// token, and identify carries it, so the service joins the contact.
function signIn(form) {
  var email = form.email.value, fields = form.first_name.value ? { first_name: form.first_name.value } : undefined;
  fetch('/demo/api/token', { method: 'POST', credentials: 'include', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: email }) })
    .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error ? j.error.message : 'sign-in failed'); return j.token; }); })
    .then(function (token) { call('identify', email, fields, token); note('Ingelogd als ' + email); })
    .catch(function (e) { note(String(e.message || e)); });
  return false;
}
function logout() { window.etalage.reset().then(function () { note('Uitgelogd: een nieuwe bezoeker'); }); }
function consent(on) { call('consent', { profiling: on }); note(on ? 'Personalisatie staat aan' : 'Personalisatie staat uit: je gedrag is gewist'); }

// The cart lives in the visitor's profile (gifts in season in the seasonal
// one): read it back from /demo/api/me.
function cartItems(me) {
  var p = (me && me.profile) || {}, items = (p.primary && p.primary.cart.items) || [];
  for (var s in p.seasonal || {}) items = items.concat(p.seasonal[s].cart.items || []);
  return items;
}

var last = null;
function refresh() {
  var flush = window.etalage.flush ? window.etalage.flush() : Promise.resolve();
  return flush.then(function () { return fetch('/demo/api/me', { credentials: 'include' }); })
    .then(function (r) { return r.json(); })
    .then(function (me) { last = me; show(me); return me; })
    .catch(function (e) { var el = document.getElementById('me'); if (el) el.textContent = String(e); });
}

function show(me) {
  var notice = document.getElementById('notice');
  if (notice) {
    if (me.bot) {
      notice.textContent = 'etalage takes this browser for a bot (its user agent says so: headless browsers and crawlers do). It still gets decisions, but no cookie is set and nothing you do here is remembered. Open the demo in an ordinary browser to see it change.';
      notice.hidden = false;
    } else if (!me.cookie) {
      notice.textContent = 'The etalage cookie did not come back: this browser blocks cookies for this site, or consent is required and not given. Every page starts as a new visitor and nothing is remembered.';
      notice.hidden = false;
    } else notice.hidden = true;
  }
  pretendBar(me.pretend);
  var count = document.getElementById('cart-count');
  if (count) count.textContent = String(cartItems(me).reduce(function (n, it) { return n + (it.quantity || 1); }, 0));
  var why = document.getElementById('why');
  if (why) {
    why.textContent = '';
    (me.words || []).forEach(function (w) { var li = document.createElement('li'); li.textContent = w; why.appendChild(li); });
  }
  var segs = document.getElementById('segments');
  if (segs) segs.textContent = 'Segments: ' + ((me.decision && me.decision.segments.length) ? me.decision.segments.join(', ') : 'none yet');
  var pre = document.getElementById('me');
  if (pre) pre.textContent = JSON.stringify(me, null, 2);
  var ul = document.getElementById('cart-items');
  if (ul) {
    var items = cartItems(me);
    ul.textContent = '';
    if (!items.length) { var li = document.createElement('li'); li.textContent = 'Je mandje is leeg.'; ul.appendChild(li); }
    items.forEach(function (it) { var li = document.createElement('li'); li.textContent = it.quantity + ' × ' + it.sku + ' (€ ' + it.price + ')' + (it.gift ? ' – cadeau' : ''); ul.appendChild(li); });
  }
}

// The Pretend bar, in development mode (etalage serve --dev) only, when
// /demo/api/me says so: some segments depend on when and on what a visitor
// browses. Each button asks the service to pretend a moment (always ahead:
// time moves forward) or a phone in the Netherlands for this browser's own
// requests, then reloads the page, so that its decide and page view run
// then. The pretense lives in an HttpOnly cookie signed by the service;
// it never touches another visitor.
var MOMENTS = [['saturday-morning', 'Saturday morning'], ['weekday-evening', 'A weekday evening'], ['december-10', '10 December'], ['tomorrow', 'Come back tomorrow']];
function pretend(body) {
  var flush = window.etalage.flush ? window.etalage.flush() : Promise.resolve();
  return flush.then(function () {
    return fetch('/demo/api/pretend', { method: 'POST', credentials: 'include', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  }).then(function (r) {
    return r.json().then(function (j) { if (!r.ok) throw new Error(j.error ? j.error.message : 'pretending failed'); location.reload(); });
  }).catch(function (e) { note(String(e.message || e)); });
}
function button(id, text, fn) {
  var b = document.createElement('button'); b.type = 'button'; b.id = id; b.textContent = text; b.addEventListener('click', fn); return b;
}
function pretendBar(st) {
  var bar = document.getElementById('pretend');
  if (!st) { if (bar) bar.hidden = true; return; }
  if (!bar) {
    bar = document.createElement('section');
    bar.id = 'pretend'; bar.setAttribute('aria-label', 'Pretend');
    var h = document.createElement('strong'); h.textContent = 'Pretend: ';
    bar.appendChild(h);
    MOMENTS.forEach(function (m) { bar.appendChild(button('pretend-' + m[0], m[1], function () { pretend({ at: m[0] }); })); });
    bar.appendChild(button('pretend-phone', 'On a phone in NL', function () { pretend({ phone: this.getAttribute('aria-pressed') !== 'true' }); }));
    bar.appendChild(button('pretend-stop', 'Stop pretending', function () { pretend({ at: 'now', phone: false }); }));
    var p = document.createElement('p'); p.id = 'pretend-status'; p.setAttribute('role', 'status');
    bar.appendChild(p);
    // A bar fixed at the bottom: showing it moves nothing on the page.
    document.body.appendChild(bar);
    document.body.classList.add('with-pretend');
  }
  bar.hidden = false;
  document.getElementById('pretend-phone').setAttribute('aria-pressed', String(st.device === 'mobile'));
  document.getElementById('pretend-stop').disabled = !st.pretending;
  var when = new Date(st.now).toLocaleString('en-GB', { timeZone: st.zone, weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit' });
  document.getElementById('pretend-status').textContent = st.pretending
    ? 'Pretending: it is ' + (st.shift ? when : 'now') + ' (' + st.zone + ')' + (st.device ? ', on a ' + (st.device === 'mobile' ? 'phone' : st.device) + ' set to ' + (st.language === 'nl' ? 'Dutch' : st.language) : '') + '. Only this browser pretends; events you send now are stamped with this time.'
    : 'Not pretending: etalage sees the real time (' + when + ') and this browser as it is. The buttons make the time- and device-dependent segments reachable.';
}

function checkout() {
  var items = cartItems(last);
  if (!items.length) return note('Je mandje is leeg');
  var gift = giftChecked();
  call('track', 'purchase', { order_id: 'demo-' + Date.now(), items: items.map(function (it) { return { sku: it.sku, category: it.category, price: it.price, quantity: it.quantity, gift: gift || it.gift }; }) });
  note('Besteld, bedankt!');
}

function on(id, type, fn) { var el = document.getElementById(id); if (el) el.addEventListener(type, fn); }
document.addEventListener('DOMContentLoaded', function () {
  on('add', 'click', function () { addToCart(this.dataset.sku, this.dataset.category, +this.dataset.price); });
  on('buy', 'click', function () { buy(this.dataset.sku, this.dataset.category, +this.dataset.price); });
  on('checkout', 'click', checkout);
  on('newsletter', 'submit', function (ev) {
    ev.preventDefault();
    var name = this.first_name.value.trim(), fields = { newsletter: true };
    if (name) fields.first_name = name;
    call('track', 'form_submit', { form: 'newsletter', fields: fields });
    note('Aangemeld voor de nieuwsbrief. Ververs de pagina of kijk hieronder waarom.');
  });
  on('login-form', 'submit', function (ev) { ev.preventDefault(); signIn(this); });
  on('prefs-form', 'submit', function (ev) {
    ev.preventDefault();
    var fields = {}, size = this.shoe_size.value, brands = [].slice.call(this.querySelectorAll('input[name=brand]:checked')).map(function (b) { return b.value; });
    if (size) fields.shoe_size = +size;
    if (brands.length) fields.favourite_brands = brands;
    call('track', 'form_submit', { form: 'preferences', fields: fields });
    note('Voorkeuren bewaard');
  });
  on('consent-on', 'click', function () { consent(true); });
  on('consent-off', 'click', function () { consent(false); });
  on('logout', 'click', logout);
  var mail = document.body.getAttribute('data-demo-mail');
  if (mail) {
    call('track', 'email_open', { campaign: mail });
    on('mail-link', 'click', function () { call('track', 'email_click', { campaign: mail, url: this.getAttribute('href') }); });
  }
});
window.addEventListener('load', function () { (window.etalage.ready || Promise.resolve()).then(refresh); });
