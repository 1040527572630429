/* etalage snippet: personalised slots, events, identity. No dependencies. */
(function (w, d) {
  'use strict';
  var pre = w.etalage, Q = 'etalage:q', MAX = 100;
  if (pre && pre.ready) return; // loaded twice
  var me = d.currentScript || (function () {
    var s = d.querySelectorAll('script[src$="/snippet.js"]');
    return s[s.length - 1];
  })();
  function attr(n) { return me && me.getAttribute('data-' + n); }
  // data-api: the service's URL when it is not where the snippet came from.
  var base = attr('api') || (me && me.src ? new URL(me.src, location.href).origin : location.origin);
  var timeout = +(attr('timeout') || 400);
  // data-consent="required": no behaviour leaves the page before
  // etalage.consent({profiling: true}); decisions still come (defaults).
  var CK = 'etalage:consent';
  // get and set: localStorage, which may be missing or full.
  function get(k) { try { return localStorage.getItem(k); } catch (e) { return null; } }
  function set(k, v) { try { localStorage.setItem(k, v); } catch (e) {} }
  function consented() { return attr('consent') !== 'required' || get(CK) === '1'; }
  var BEHAVIOUR = { page_view: 1, click: 1, cart_add: 1, cart_remove: 1, purchase: 1, email_open: 1, email_click: 1, form_submit: 1 };
  var timer = 0, backoff = 1000, single = false, busy = null;

  function load() {
    try { return JSON.parse(get(Q)) || []; } catch (e) { return []; }
  }
  function save(q) { set(Q, JSON.stringify(q.slice(-MAX))); }
  // json reads an answer's body, {} when it has none.
  function json(r) { return r.json().then(null, function () { return {}; }); }
  function enqueue(evs) { save(load().concat(evs)); }
  // take removes the events just sent from the persisted queue, leaving any
  // queued meanwhile.
  function take(sent) {
    var q = load(), ids = {};
    sent.forEach(function (e) { ids[e._id] = 1; });
    save(q.filter(function (e) { return !ids[e._id]; }));
  }
  function strip(evs) {
    return evs.map(function (e) {
      var o = {}; for (var k in e) if (k !== '_id') o[k] = e[k]; return o;
    });
  }
  function post(path, body, keepalive) {
    return fetch(base + path, {
      method: 'POST', credentials: 'include', keepalive: !!keepalive,
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body)
    });
  }
  // flush sends the queued events. A flush while a batch is on its way
  // waits for it and then sends what is left, so that no event goes twice
  // and flush().then() sees them stored; only the keepalive flush of a
  // page being left does not wait.
  function flush(keepalive) {
    if (busy && !keepalive) return busy.then(function () { return flush(); });
    clearTimeout(timer); timer = 0;
    var q = load();
    if (!q.length) { single = false; return Promise.resolve(); }
    var batch = single ? q.slice(0, 1) : q;
    var p = busy = post('/v1/events', { events: strip(batch), returning: seen() || undefined }, keepalive).then(function (r) {
      if (!r.ok) return refused(r, batch);
      return json(r).then(function (j) {
        if (j.cookie === 'missing') return missing(); // kept for a request that brings the cookie
        take(batch); backoff = 1000;
        if (batch.length < q.length) schedule();
      });
    }, function () { retry(backoff); }).then(function () { if (busy === p) busy = null; });
    return p;
  }
  // refused handles an answer that stored nothing of batch. 429 and 5xx are
  // retried later. A batch rejected for one event (the 400 names its index
  // in error.event) drops that event alone and sends the rest again at
  // once; a rejection that names no event is narrowed down by sending one
  // event at a time. Each step drops or delivers one, so this ends.
  function refused(r, batch) {
    if (r.status === 429 || r.status >= 500 || r.status < 400) {
      var ra = +r.headers.get('Retry-After');
      retry(ra > 0 ? ra * 1000 : backoff);
      return Promise.resolve();
    }
    return json(r).then(function (b) {
      var i = b && b.error && b.error.event;
      if (typeof i === 'number' && batch[i]) take([batch[i]]);
      else if (batch.length === 1) take(batch);
      else single = true;
      schedule();
    });
  }
  // The service's cookie did not come back although this browser had an
  // answer before: etalage is served from another site than the shop's, so
  // the browser blocks its cookie. Nothing is stored; say so, once.
  var SEEN = 'etalage:seen', warned = false;
  function seen() { return get(SEEN) === '1'; }
  function missing() {
    if (!warned && w.console) console.error('etalage: the visitor cookie does not come back, so nothing is personalised or stored: serve etalage under the shop\'s own site (docs/INTEGRATION.md, "Serve etalage under the shop\'s own site")');
    warned = true;
  }
  function retry(ms) {
    backoff = Math.min(backoff * 2, 60000);
    clearTimeout(timer); timer = setTimeout(flush, ms);
  }
  function schedule() { if (!timer) timer = setTimeout(flush, 50); }
  function id() { return Date.now().toString(36) + Math.random().toString(36).slice(2); }
  function push(ev) {
    if (BEHAVIOUR[ev.type] && !consented()) return;
    ev._id = id();
    enqueue([ev]); schedule();
  }

  // The visitor cookie is HttpOnly and its value never reaches this script:
  // it is a credential (see SECURITY.md).
  var api = {
    track: function (type, props) {
      var ev = { type: type }; for (var k in props || {}) ev[k] = props[k]; push(ev);
    },
    // token: the identity token the shop backend issued at login; without
    // it the address is only stored as a claim on this browser's profile.
    identify: function (email, fields, token) {
      push({ type: 'identify', email: email, fields: fields || undefined, token: token || undefined });
    },
    consent: function (purposes) {
      if ('profiling' in purposes) set(CK, purposes.profiling ? '1' : '0');
      push({ type: 'consent', purposes: purposes });
    },
    reset: function () {
      return flush().then(function () { return post('/v1/reset', {}); }).then(function (r) {
        // Under data-consent="required" the new visitor has no consent on
        // the service until this browser's choice is sent again.
        if (attr('consent') === 'required' && consented()) push({ type: 'consent', purposes: { profiling: true } });
        return r.json();
      });
    },
    flush: flush
  };

  // pageView describes this page: its path, and the category and product
  // the shop marks with data-etalage-category / data-etalage-sku on any
  // element (the first one found), so that rules can count category
  // and product views.
  function pageView() {
    var pv = { type: 'page_view', url: location.pathname };
    ['category', 'sku'].forEach(function (k) {
      var el = d.querySelector('[data-etalage-' + k + ']'), v = el && el.getAttribute('data-etalage-' + k);
      if (v) pv[k] = v;
    });
    return pv;
  }

  function decide() {
    var only = attr('slots'), els = d.querySelectorAll('[data-etalage-slot]'), slots = [], byslot = {};
    for (var i = 0; i < els.length; i++) {
      var s = els[i].getAttribute('data-etalage-slot');
      if (only && (',' + only + ',').indexOf(',' + s + ',') < 0) continue;
      if (!byslot[s]) { byslot[s] = []; slots.push(s); }
      byslot[s].push(els[i]);
    }
    // The page view rides on the decide; when the decide stores nothing
    // (degraded, refused, or no answer) it joins the queue and is retried
    // through /v1/events with the events queued before it.
    var queued = load();
    var pv = null;
    if (consented()) { pv = pageView(); pv._id = id(); }
    var evs = (pv ? [pv] : []).concat(queued);
    var late = false;
    var t = setTimeout(function () { late = true; }, timeout);
    function keep() { if (pv) enqueue([pv]); }
    return post('/v1/decide', {
      slots: slots,
      context: { url: location.pathname + location.search, referrer: d.referrer, language: navigator.language },
      events: strip(evs), returning: seen() || undefined
    }).then(function (r) {
      if (r.ok) return r.json();
      keep();
      return refused(r, evs).then(function () { throw new Error('decide ' + r.status); });
    }, function (e) { keep(); retry(backoff); throw e; }).then(function (res) {
      clearTimeout(t);
      if (res.cookie === 'missing') { keep(); missing(); } // nothing stored: kept for a request with the cookie
      else if (!res.degraded) take(queued); else { keep(); retry(backoff); }
      set(SEEN, '1');
      swap(res.blocks || {}, byslot, late);
      exposed(res.experiments);
      return res;
    }).catch(function () { clearTimeout(t); return null; });
  }

  // swap fills each slot with its block; a slot without one keeps its
  // default content. After the timeout only slots marked
  // data-etalage-late="swap" change: the visitor is already reading the rest.
  // A slot keeps at least the height it had, so the page does not jump.
  function swap(blocks, byslot, late) {
    for (var s in byslot) {
      var b = blocks[s];
      if (!b) continue;
      byslot[s].forEach(function (el) {
        if (late && el.getAttribute('data-etalage-late') !== 'swap') return;
        if (b.html != null) {
          if (el.offsetHeight) el.style.minHeight = el.offsetHeight + 'px';
          el.innerHTML = b.html;
        }
        el.setAttribute('data-etalage-block', b.id);
        el.dispatchEvent(new CustomEvent('etalage:block', { bubbles: true, detail: { slot: s, id: b.id, html: b.html, data: b.data } }));
      });
    }
  }

  // exposed hands the experiments this page shows to the shop's tag
  // manager, when it has one: {event: 'experiment_viewed', experiment_id,
  // variant_id} on window.dataLayer (the holdout as experiment "holdout").
  function exposed(xs) {
    var dl = w.dataLayer;
    if (!xs || !dl || typeof dl.push !== 'function') return;
    xs.forEach(function (x) { dl.push({ event: 'experiment_viewed', experiment_id: x.id, variant_id: x.variant }); });
  }

  // A click on a link inside a filled slot counts for the block report as
  // click{target: "block:<id>"}; it waits in localStorage across the page
  // change like every event.
  d.addEventListener('click', function (e) {
    var a = e.target && e.target.closest && e.target.closest('a[href]');
    var slot = a && a.closest('[data-etalage-block]');
    if (slot) api.track('click', { target: 'block:' + slot.getAttribute('data-etalage-block'), url: location.pathname });
  }, true);

  w.addEventListener('pagehide', function () { flush(true); });
  d.addEventListener('visibilitychange', function () { if (d.visibilityState === 'hidden') flush(true); });

  api.ready = decide();
  w.etalage = api;
  // Calls queued before the snippet loaded: window.etalage = [['track', ...]].
  if (pre && pre.length) pre.forEach(function (c) { api[c[0]].apply(api, c.slice(1)); });
})(window, document);
