// The etalage console: plain JavaScript on the admin JSON API, no build
// step. Every value from the server goes into the page as text (never as
// markup), so nothing a profile or a document holds can run here.
'use strict';
(function () {
  var csrf = null;
  var running = { rev: 0, doc: '' }; // the document the editor started from
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function flash(msg) { var f = clear($('flash')); if (msg) f.appendChild(el('p', { text: msg })); }
  function fmtNum(n) { return Math.round(n).toLocaleString('en'); }
  function fmtTime(t) { if (!t || t.indexOf('0001-') === 0) return '—'; var d = new Date(t); return d.toLocaleString(); }

  function api(method, url, body, headers) {
    var h = { 'X-CSRF-Token': csrf || '' };
    for (var k in headers || {}) h[k] = headers[k];
    if (body !== undefined && typeof body !== 'string') { body = JSON.stringify(body); h['Content-Type'] = 'application/json'; }
    return fetch(url, { method: method, headers: h, body: body, credentials: 'same-origin' }).then(function (r) {
      return r.text().then(function (t) {
        var j = {};
        try { j = t ? JSON.parse(t) : {}; } catch (e) { j = { raw: t }; }
        if (r.status === 401) { showSignIn('You were signed out (idle too long, or the server restarted). Sign in again.'); }
        return { status: r.status, ok: r.ok, json: j, headers: r.headers };
      });
    });
  }
  function errText(res) { return (res.json && res.json.error && res.json.error.message) || ('HTTP ' + res.status); }

  // --- sign in and out -------------------------------------------------
  function showSignIn(msg) {
    csrf = null;
    shownView = '';
    $('nav').hidden = true;
    ['overview', 'blocks', 'edit', 'history', 'visitor'].forEach(function (s) { $(s).hidden = true; });
    $('signin').hidden = false;
    $('signin-error').textContent = msg || '';
    $('token').focus();
  }
  $('signin-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    fetch('/admin/session', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: $('token').value }), credentials: 'same-origin' })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, json: j }; }); })
      .then(function (res) {
        if (!res.ok) { $('signin-error').textContent = (res.json.error && res.json.error.message) || 'Sign-in failed'; return; }
        $('token').value = '';
        csrf = res.json.csrf;
        started();
      });
  });
  $('signout').addEventListener('click', function () {
    api('DELETE', '/admin/session').then(function () { showSignIn('Signed out.'); });
  });
  function started() {
    $('signin').hidden = true;
    $('nav').hidden = false;
    route();
  }

  // --- routing ------------------------------------------------------------
  var shownView = ''; // h1 takes the focus when the view changes, not when its address does
  var views = { overview: loadOverview, blocks: loadBlocks, edit: loadEdit, history: loadHistory, visitor: function () {} };
  function route() {
    if (!csrf) return;
    var name = (location.hash || '#overview').slice(1).split('?')[0];
    if (!views[name]) name = 'overview';
    Object.keys(views).forEach(function (v) { $(v).hidden = v !== name; });
    document.querySelectorAll('nav a').forEach(function (a) {
      if (a.getAttribute('href') === '#' + name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    flash('');
    views[name]();
    if (name !== shownView) { var h = $(name).querySelector('h1'); if (h) { h.tabIndex = -1; h.focus(); } }
    shownView = name;
  }
  window.addEventListener('hashchange', route);

  // --- overview -----------------------------------------------------------
  function loadOverview() {
    $('ov-rev').textContent = 'Loading…';
    api('GET', '/admin/v1/overview').then(function (res) {
      if (!res.ok) { $('ov-rev').textContent = errText(res); return; }
      var o = res.json, sum = o.summary;
      $('ov-rev').textContent = 'Running revision ' + o.revision + (o.revision === 0 ? ' (the built-in demo document, never applied)' : '') + '. Today is ' + fmtTime(o.now) + '.';
      var smp = o.sample;
      $('ov-sample').textContent = o.sizes_error ? o.sizes_error : (smp.exact ? 'Sizes are exact: all ' + fmtNum(smp.population) + ' stored profiles were read.' :
        'Sizes are estimated from a random sample of ' + fmtNum(smp.size) + ' of about ' + fmtNum(smp.population) + ' stored profiles (' + smp.took_ms + ' ms). Request context (device, page) counts as absent.');
      var tb = clear($('ov-segments').tBodies[0]);
      sum.segments.forEach(function (s) {
        var sz = (o.sizes || {})[s.id];
        var btn = el('button', { type: 'button', class: 'link', text: 'Exact count', onclick: function () { exactCount(s.id, btn); } });
        tb.appendChild(el('tr', {}, el('td', { text: s.id }), el('td', { text: s.parent || '' }),
          el('td', { class: 'num', text: sz ? fmtNum(sz.estimate) : '?' }),
          el('td', { text: sz ? fmtNum(sz.interval[0]) + ' – ' + fmtNum(sz.interval[1]) : '' }), el('td', {}, btn)));
      });
      var slots = clear($('ov-slots'));
      sum.slots.forEach(function (sl) {
        var t = el('table', {}, el('thead', {}, el('tr', {}, el('th', { text: 'Block' }), el('th', { text: 'Shown to' }), el('th', { class: 'num', text: 'Priority' }), el('th', { text: 'Schedule' }), el('th', { text: 'Content' }))));
        var b = el('tbody');
        sl.blocks.forEach(function (bl) {
          var sched = bl.from || bl.to ? (bl.from || '…') + ' to ' + (bl.to || '…') + (bl.running ? ' (running)' : ' (not running today)') : 'always';
          b.appendChild(el('tr', {}, el('td', { text: bl.id }), el('td', { text: bl.segment ? 'segment ' + bl.segment : 'everyone' }), el('td', { class: 'num', text: bl.priority }),
            el('td', { text: sched }), el('td', { text: [bl.has_html ? 'html' : '', bl.has_data ? 'data' : ''].filter(Boolean).join(' + ') })));
        });
        t.appendChild(b);
        slots.appendChild(el('h3', { text: 'Slot ' + sl.slot }));
        slots.appendChild(el('div', { class: 'scroll' }, t));
      });
      var st = clear($('ov-seasons').tBodies[0]);
      sum.seasons.forEach(function (se) {
        st.appendChild(el('tr', {}, el('td', { text: se.id }), el('td', { text: se.collect }), el('td', { text: se.active }),
          el('td', { text: (se.collecting ? 'collecting' : 'not collecting') + ', ' + (se.active_now ? 'visible to rules' : 'invisible to rules') })));
      });
      loadMore();
    });
  }
  function exactCount(id, btn) {
    btn.disabled = true; btn.textContent = 'Counting…';
    api('GET', '/admin/v1/segments/' + encodeURIComponent(id) + '/count').then(function (res) {
      if (res.status === 202) { btn.textContent = 'Counting… ' + Math.round(res.json.progress * 100) + '% (' + fmtNum(res.json.scanned) + ' read)'; setTimeout(function () { exactCount(id, btn); }, 1500); return; }
      btn.disabled = false;
      btn.textContent = res.ok ? 'Exactly ' + fmtNum(res.json.count) + ' of ' + fmtNum(res.json.scanned) : errText(res);
    });
  }
  // Experiments, the holdout and webhooks arrive with their own admin
  // routes; the overview shows whichever this server answers.
  function loadMore() {
    var box = clear($('ov-more'));
    var shown = 0;
    function done() { if (!shown) box.appendChild(el('p', { class: 'muted', text: 'This server has no experiments, holdout or webhooks configured.' })); }
    var pending = 3;
    function step() { if (--pending === 0) done(); }
    api('GET', '/admin/v1/holdout').then(function (res) {
      if (res.ok) { shown++; box.appendChild(report('Holdout', res.json)); } step();
    }).catch(step);
    api('GET', '/admin/v1/experiments').then(function (res) {
      if (res.ok) {
        var list = res.json.experiments || [];
        list.forEach(function (x) {
          shown++;
          var id = x.id || x;
          var c = el('div', { class: 'card' }, el('strong', { text: 'Experiment ' + id }), el('p', { class: 'muted', text: 'Loading report…' }));
          box.appendChild(c);
          api('GET', '/admin/v1/experiments/' + encodeURIComponent(id)).then(function (r) { if (r.ok) box.replaceChild(report('Experiment ' + id, r.json), c); });
        });
      }
      step();
    }).catch(step);
    api('GET', '/admin/v1/webhooks').then(function (res) {
      if (res.ok) {
        (res.json.webhooks || []).forEach(function (w) {
          shown++;
          box.appendChild(el('div', { class: 'card' }, el('strong', { text: 'Webhook ' + w.id }),
            el('p', { text: 'pending ' + (w.pending || 0) + ', delivered ' + (w.delivered || 0) + ', failed ' + (w.failed || 0) + (w.last_error ? '; last error: ' + w.last_error : '') })));
        });
      }
      step();
    }).catch(step);
  }
  function report(title, r) {
    var t = el('table', {}, el('thead', {}, el('tr', {}, el('th', { text: 'Variant' }), el('th', { class: 'num', text: 'Visitors' }), el('th', { class: 'num', text: 'Conversions' }),
      el('th', { class: 'num', text: 'Rate' }), el('th', { class: 'num', text: 'Uplift' }), el('th', { text: '95% interval' }), el('th', { class: 'num', text: 'Chance to beat control' }))));
    var b = el('tbody');
    (r.variants || []).forEach(function (v) {
      var pct = function (x) { return x == null ? '' : (x * 100).toFixed(1) + '%'; };
      b.appendChild(el('tr', {}, el('td', { text: v.id }), el('td', { class: 'num', text: fmtNum(v.visitors || 0) }), el('td', { class: 'num', text: fmtNum(v.conversions || 0) }),
        el('td', { class: 'num', text: pct(v.rate) }), el('td', { class: 'num', text: pct(v.uplift) }), el('td', { text: v.ci95 ? pct(v.ci95[0]) + ' – ' + pct(v.ci95[1]) : '' }),
        el('td', { class: 'num', text: pct(v.chance_to_beat_control) })));
    });
    t.appendChild(b);
    var srm = r.srm_p != null && r.srm_p < 0.001 ? el('p', { class: 'error', text: 'Sample ratio mismatch (p = ' + r.srm_p.toPrecision(2) + '): the split is not what the weights say; do not trust this result.' }) : null;
    return el('div', { class: 'card' }, el('strong', { text: title }), el('div', { class: 'scroll' }, t), srm);
  }

  // --- blocks -------------------------------------------------------------
  // The block report (GET /admin/v1/report) per block over the range and
  // per day. The range is the shop's: empty inputs let the server choose
  // its last seven days, and the inputs then show the days it answered.
  // Visitors are a sketch per block and day: they cannot be added up over
  // days or blocks, so a total shows the range the true number lies in.
  var blockState = { seq: 0, report: null };
  function blockParams() {
    var q = (location.hash.split('?')[1] || ''), p = {};
    q.split('&').forEach(function (kv) {
      var i = kv.indexOf('=');
      try { if (i > 0) p[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1)); } catch (e) { /* a mangled address: that parameter is ignored */ }
    });
    return p;
  }
  function loadBlocks() {
    var p = blockParams();
    $('bl-from').value = p.from || '';
    $('bl-to').value = p.to || '';
    $('bl-sort').value = blockOrder.hasOwnProperty(p.sort) ? p.sort : 'ctr';
    fetchBlocks(p.from || '', p.to || '');
  }
  // blockRangeError checks the inputs as far as the page can; the server
  // has the last word (e.g. on the longest range) and its error is shown.
  function blockRangeError() {
    var f = $('bl-from'), t = $('bl-to');
    if (f.validity.badInput) return 'From is not a complete date.';
    if (t.validity.badInput) return 'To is not a complete date.';
    if (f.value && t.value && t.value < f.value) return 'To (' + t.value + ') is before From (' + f.value + ').';
    return '';
  }
  $('bl-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var bad = blockRangeError();
    if (bad) { blockState.seq++; $('bl-error').textContent = bad; clear($('bl-result')); return; }
    var from = $('bl-from').value, to = $('bl-to').value, q = [];
    if (from) q.push('from=' + from);
    if (to) q.push('to=' + to);
    q.push('sort=' + $('bl-sort').value);
    var hash = '#blocks?' + q.join('&');
    if (location.hash === hash) fetchBlocks(from, to); else location.hash = hash; // the route loads it
  });
  $('bl-sort').addEventListener('change', function () {
    var p = blockParams(), q = [];
    if (p.from) q.push('from=' + encodeURIComponent(p.from));
    if (p.to) q.push('to=' + encodeURIComponent(p.to));
    q.push('sort=' + $('bl-sort').value);
    history.replaceState(null, '', '#blocks?' + q.join('&'));
    if (blockState.report) renderBlocks(blockState.report);
  });
  function fetchBlocks(from, to) {
    var seq = ++blockState.seq, q = [];
    if (from) q.push('from=' + encodeURIComponent(from));
    if (to) q.push('to=' + encodeURIComponent(to));
    $('bl-error').textContent = '';
    var box = clear($('bl-result'));
    box.appendChild(el('p', { text: 'Loading…' }));
    api('GET', '/admin/v1/report' + (q.length ? '?' + q.join('&') : '')).then(function (res) {
      if (seq !== blockState.seq) return; // a later request or a refused range took over
      clear(box);
      blockState.report = null;
      if (!res.ok) { $('bl-error').textContent = errText(res); return; }
      blockState.report = res.json;
      $('bl-from').value = res.json.from;
      $('bl-to').value = res.json.to;
      renderBlocks(res.json);
    });
  }
  // sumLines adds up report lines: served and clicks exactly, visitors as
  // [at least, at most] (equal when only one line has visitors).
  function sumLines(lines) {
    var s = { served: 0, clicks: 0, vmin: 0, vmax: 0 };
    lines.forEach(function (l) { s.served += l.served; s.clicks += l.clicks; s.vmin = Math.max(s.vmin, l.visitors); s.vmax += l.visitors; });
    s.ctr = s.served > 0 ? s.clicks / s.served : null;
    return s;
  }
  function pct2(x) { return x == null ? '—' : (x * 100).toFixed(2) + '%'; }
  function visitorsCell(s) {
    if (s.vmin === s.vmax) return el('td', { class: 'num visitors', text: fmtNum(s.vmax) });
    return el('td', { class: 'num visitors', title: 'Between ' + fmtNum(s.vmin) + ' and ' + fmtNum(s.vmax) + ': a visitor counted on several days or blocks may be the same person.', text: fmtNum(s.vmin) + '–' + fmtNum(s.vmax) });
  }
  var blockOrder = {
    ctr: function (a, b) { return (b.ctr == null ? -1 : b.ctr) - (a.ctr == null ? -1 : a.ctr) || b.clicks - a.clicks || cmpID(a, b); },
    clicks: function (a, b) { return b.clicks - a.clicks || cmpID(a, b); },
    served: function (a, b) { return b.served - a.served || cmpID(a, b); },
    block: cmpID,
  };
  function cmpID(a, b) { return a.id < b.id ? -1 : a.id > b.id ? 1 : 0; }
  function countCells(s, maxCTR) {
    var bar = el('span', { class: 'bar', 'aria-hidden': 'true' });
    bar.style.width = (s.ctr && maxCTR ? Math.max(2, Math.round(s.ctr / maxCTR * 100)) : 0) + '%';
    return [el('td', { class: 'num served', text: fmtNum(s.served) }), visitorsCell(s), el('td', { class: 'num clicks', text: fmtNum(s.clicks) }),
      el('td', { class: 'num ctr' }, el('span', { class: 'ctr-text', text: pct2(s.ctr) }), maxCTR == null ? null : bar)];
  }
  // slotCell is a block's slot; a block the running definitions no
  // longer hold has none.
  function slotCell(slot) {
    return slot ? el('td', { text: slot }) : el('td', { class: 'muted', title: 'The running definitions no longer hold this block.', text: '—' });
  }
  function blockRow(first, slotTd, s, maxCTR, attrs) {
    var tr = el('tr', attrs);
    tr.appendChild(el('td', { class: 'block', text: first }));
    tr.appendChild(slotTd);
    countCells(s, maxCTR).forEach(function (c) { tr.appendChild(c); });
    return tr;
  }
  var blockHead = function (first) {
    return el('thead', {}, el('tr', {}, el('th', { text: first }), el('th', { text: 'Slot' }), el('th', { class: 'num', text: 'Served' }), el('th', { class: 'num', text: 'Visitors' }),
      el('th', { class: 'num', text: 'Clicks' }), el('th', { class: 'num', text: 'Click-through rate' })));
  };
  function renderBlocks(r) {
    var box = clear($('bl-result')), order = blockOrder[$('bl-sort').value] || blockOrder.ctr;
    var byBlock = {}, all = [];
    r.days.forEach(function (d) {
      d.blocks.forEach(function (l) {
        all.push(l);
        var b = byBlock[l.id] || (byBlock[l.id] = { id: l.id, slot: '', lines: [] });
        if (l.slot) b.slot = l.slot;
        b.lines.push(l);
      });
    });
    box.appendChild(el('h2', { text: 'Per block, ' + r.from + (r.to !== r.from ? ' to ' + r.to : '') }));
    box.appendChild(el('p', { class: 'muted', text: 'Days in ' + r.timezone + '. Click-through rate is clicks per block served.' }));
    if (!all.length) { box.appendChild(el('p', { id: 'bl-empty', text: 'No block was served or clicked in this range.' })); return; }
    var totals = Object.keys(byBlock).map(function (id) { var s = sumLines(byBlock[id].lines); s.id = id; s.slot = byBlock[id].slot; return s; }).sort(order);
    var maxCTR = Math.max.apply(null, totals.map(function (s) { return s.ctr || 0; }));
    var tb = el('tbody');
    totals.forEach(function (s) { tb.appendChild(blockRow(s.id, slotCell(s.slot), s, maxCTR, { 'data-block': s.id })); });
    var foot = el('tfoot', {}, blockRow('All blocks', el('td'), sumLines(all), null, { class: 'total' }));
    box.appendChild(el('div', { class: 'scroll' }, el('table', { id: 'bl-blocks' }, blockHead('Block'), tb, foot)));

    box.appendChild(el('h2', { text: 'Per day' }));
    var t = el('table', { id: 'bl-days' }, blockHead('Day and block'));
    r.days.forEach(function (d) {
      var g = el('tbody', { 'data-day': d.day });
      var dayTotal = sumLines(d.blocks);
      g.appendChild(blockRow(d.day, el('td', { class: 'muted', text: d.blocks.length ? 'all blocks' : 'nothing served' }), dayTotal, null, { class: 'total' }));
      var lines = d.blocks.map(function (l) { var s = sumLines([l]); s.id = l.id; s.slot = l.slot; return s; }).sort(order);
      var dayMax = Math.max.apply(null, lines.map(function (s) { return s.ctr || 0; }).concat([0]));
      lines.forEach(function (s) { g.appendChild(blockRow(s.id, slotCell(s.slot), s, dayMax, { 'data-block': s.id })); });
      t.appendChild(g);
    });
    box.appendChild(el('div', { class: 'scroll' }, t));
    box.appendChild(el('p', { class: 'muted', text: 'Visitors are distinct per block and day (a HyperLogLog estimate, exact in practice below a few hundred). Over several days or blocks the same person can count more than once, so a total shows the range the true number lies in.' }));
  }

  // --- edit ---------------------------------------------------------------
  var problemLines = {};
  function gutter() {
    var n = $('ed-text').value.split('\n').length, g = clear($('ed-gutter'));
    for (var i = 1; i <= n; i++) {
      if (problemLines[i]) g.appendChild(el('span', { class: 'bad', title: problemLines[i], text: i + '\n' }));
      else g.appendChild(document.createTextNode(i + '\n'));
    }
    g.scrollTop = $('ed-text').scrollTop;
  }
  $('ed-text').addEventListener('input', gutter);
  $('ed-text').addEventListener('scroll', function () { $('ed-gutter').scrollTop = $('ed-text').scrollTop; });
  $('ed-text').addEventListener('keydown', function (ev) {
    // Tab indents with two spaces (YAML has no tabs); Escape then Tab leaves.
    if (ev.key === 'Tab' && !ev.shiftKey && !this.dataset.escaped) {
      ev.preventDefault();
      var s = this.selectionStart; this.setRangeText('  ', s, this.selectionEnd, 'end'); gutter();
    }
    if (ev.key === 'Escape') this.dataset.escaped = '1'; else if (ev.key !== 'Tab') delete this.dataset.escaped;
  });
  function goToLine(n) {
    var t = $('ed-text'), lines = t.value.split('\n'), start = 0;
    for (var i = 0; i < n - 1 && i < lines.length; i++) start += lines[i].length + 1;
    t.focus();
    t.setSelectionRange(start, start + (lines[n - 1] || '').length);
    t.scrollTop = Math.max(0, (n - 5) * 18.85);
  }
  function loadEdit(force) {
    if (!force && running.loaded) { gutter(); return; }
    api('GET', '/admin/v1/definitions').then(function (res) {
      if (!res.ok) { flash(errText(res)); return; }
      running = { rev: res.json.revision, doc: res.json.document, loaded: true };
      $('ed-rev').textContent = String(running.rev);
      $('ed-text').value = running.doc;
      problemLines = {};
      gutter();
      clear($('ed-result'));
    });
  }
  $('ed-reload').addEventListener('click', function () { loadEdit(true); });

  function showProblems(box, list, title, cls) {
    if (!list || !list.length) return;
    box.appendChild(el('h2', { text: title }));
    var ul = el('ul', { class: 'problems ' + cls });
    list.forEach(function (p) {
      if (cls === 'error' && p.line) problemLines[p.line] = p.message;
      var where = p.line ? el('a', { href: '#edit', text: 'line ' + p.line, onclick: function (ev) { ev.preventDefault(); goToLine(p.line); } }) : el('span', { text: 'document' });
      ul.appendChild(el('li', {}, where, ' ', el('code', { text: p.path || '' }), ' ', p.message));
    });
    box.appendChild(ul);
  }

  // diff returns the lines of a and b marked as kept, removed or added
  // (a longest-common-subsequence diff; documents are small).
  function diff(a, b) {
    a = a.split('\n'); b = b.split('\n');
    var n = a.length, m = b.length;
    if (n * m > 4e6) return [{ op: ' ', text: '(too large to compare line by line)' }];
    var dp = []; for (var i = 0; i <= n; i++) { dp.push(new Int32Array(m + 1)); }
    for (i = n - 1; i >= 0; i--) for (var j = m - 1; j >= 0; j--) dp[i][j] = a[i] === b[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
    var out = []; i = 0; j = 0;
    while (i < n && j < m) {
      if (a[i] === b[j]) { out.push({ op: ' ', text: a[i] }); i++; j++; } else if (dp[i + 1][j] >= dp[i][j + 1]) { out.push({ op: '-', text: a[i++] }); } else { out.push({ op: '+', text: b[j++] }); }
    }
    while (i < n) out.push({ op: '-', text: a[i++] });
    while (j < m) out.push({ op: '+', text: b[j++] });
    return out;
  }
  function diffView(a, b) {
    var lines = diff(a, b), pre = el('div', { class: 'diff', role: 'region', 'aria-label': 'Differences' }), changed = 0;
    // Show changes with three lines of context around them.
    var keep = lines.map(function () { return false; });
    lines.forEach(function (l, i) { if (l.op !== ' ') { changed++; for (var k = Math.max(0, i - 3); k <= Math.min(lines.length - 1, i + 3); k++) keep[k] = true; } });
    if (!changed) return el('p', { class: 'muted', text: 'No differences.' });
    var gap = false;
    lines.forEach(function (l, i) {
      if (!keep[i]) { if (!gap) pre.appendChild(el('span', { class: 'muted', text: '  …\n' })); gap = true; return; }
      gap = false;
      pre.appendChild(el('span', { class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : '', text: l.op + ' ' + l.text + '\n' }));
    });
    return pre;
  }
  function sizeText(s) { return s ? fmtNum(s.estimate) + ' (' + fmtNum(s.interval[0]) + '–' + fmtNum(s.interval[1]) + ')' : '—'; }
  function decisionList(side) {
    var ul = el('ul');
    var blocks = side.decision.blocks;
    Object.keys(blocks).sort().forEach(function (slot) { ul.appendChild(el('li', {}, el('strong', { text: slot }), ': ', blocks[slot] ? blocks[slot].id : 'nothing (page default)')); });
    return el('div', {}, ul, el('p', {}, 'Segments: ', side.decision.segments.length ? side.decision.segments.join(', ') : 'none'));
  }

  $('ed-check').addEventListener('click', function () {
    var box = clear($('ed-result')), doc = $('ed-text').value;
    problemLines = {};
    box.appendChild(el('p', { text: 'Checking…' }));
    var body = { document: doc };
    if ($('ed-visitor').value.trim()) body.visitor = $('ed-visitor').value.trim();
    api('POST', '/admin/v1/definitions/dry-run', body).then(function (res) {
      clear(box);
      if (res.status === 422) {
        box.appendChild(el('p', { class: 'error', text: 'The document has ' + res.json.errors.length + ' problem(s); nothing was applied.' }));
        showProblems(box, res.json.errors, 'Problems', 'error');
        gutter();
        return;
      }
      if (!res.ok) { box.appendChild(el('p', { class: 'error', text: errText(res) })); return; }
      var r = res.json;
      box.appendChild(el('p', { class: 'ok', text: 'The document is valid.' + (r.changed ? '' : ' It is the running document: applying it changes nothing.') }));
      showProblems(box, r.warnings, 'Warnings', 'warning');
      box.appendChild(el('h2', { text: 'Changes against revision ' + r.running_revision }));
      box.appendChild(diffView(running.doc, doc));
      box.appendChild(el('h2', { text: 'Segment sizes before and after' }));
      box.appendChild(el('p', { class: 'muted', text: (r.sample.exact ? 'Exact, over all ' : 'Estimated from a sample of ' + fmtNum(r.sample.size) + ' of about ') + fmtNum(r.sample.population) + ' profiles, with 95% intervals.' }));
      var t = el('table', { id: 'dry-segments' }, el('thead', {}, el('tr', {}, el('th', { text: 'Segment' }), el('th', { class: 'num', text: 'Before' }), el('th', { class: 'num', text: 'After' }))));
      var tb = el('tbody');
      r.segments.forEach(function (s) {
        var note = !s.before ? ' (new)' : !s.after ? ' (removed)' : '';
        tb.appendChild(el('tr', {}, el('td', { text: s.id + note }), el('td', { class: 'num', text: sizeText(s.before) }), el('td', { class: 'num', text: sizeText(s.after) })));
      });
      t.appendChild(tb);
      box.appendChild(el('div', { class: 'scroll' }, t));
      if (r.visitor) {
        box.appendChild(el('h2', { text: 'What ' + body.visitor + ' sees' }));
        box.appendChild(el('div', { class: 'grid2', id: 'dry-visitor' },
          el('div', { class: 'card' }, el('strong', { text: 'Before (running)' }), decisionList(r.visitor.before)),
          el('div', { class: 'card' }, el('strong', { text: 'After (this document)' }), decisionList(r.visitor.after))));
      }
      gutter();
    });
  });

  $('ed-apply').addEventListener('click', function () {
    var box = clear($('ed-result')), doc = $('ed-text').value;
    problemLines = {};
    var note = $('ed-note').value.trim();
    api('PUT', '/admin/v1/definitions?note=' + encodeURIComponent(note), doc, { 'If-Match': '"' + running.rev + '"', 'Content-Type': 'application/yaml' }).then(function (res) {
      if (res.status === 409) {
        var mine = doc;
        box.appendChild(el('p', { class: 'error', role: 'alert', text: 'Not applied: someone else applied a new revision since you started editing revision ' + running.rev + '. Your text is still here; below is what changed meanwhile. Merge it, then apply again.' }));
        api('GET', '/admin/v1/definitions').then(function (cur) {
          var before = running.doc;
          running = { rev: cur.json.revision, doc: cur.json.document, loaded: true };
          $('ed-rev').textContent = String(running.rev);
          $('ed-text').value = mine;
          box.appendChild(el('h2', { text: 'Revision ' + running.rev + ' against the one you started from' }));
          box.appendChild(diffView(before, running.doc));
          gutter();
        });
        return;
      }
      if (res.status === 422) {
        box.appendChild(el('p', { class: 'error', text: 'Not applied: the document has problems.' }));
        showProblems(box, res.json.errors, 'Problems', 'error');
        gutter();
        return;
      }
      if (!res.ok) { box.appendChild(el('p', { class: 'error', text: errText(res) })); return; }
      running = { rev: res.json.revision, doc: doc, loaded: true };
      $('ed-rev').textContent = String(running.rev);
      $('ed-note').value = '';
      box.appendChild(el('p', { class: 'ok', role: 'status', text: res.json.changed ? 'Applied as revision ' + res.json.revision + '. Every node runs it within a second.' : 'Unchanged: revision ' + res.json.revision + ' already holds this document.' }));
      gutter();
    });
  });

  // --- history ------------------------------------------------------------
  function loadHistory() {
    clear($('hi-detail'));
    var tb = clear($('hi-list').tBodies[0]);
    api('GET', '/admin/v1/definitions/revisions?limit=100').then(function (res) {
      if (!res.ok) { flash(errText(res)); return; }
      if (!res.json.revisions.length) tb.appendChild(el('tr', {}, el('td', { colspan: 4, text: 'No revision was applied yet: the server runs the built-in demo document.' })));
      res.json.revisions.forEach(function (r) {
        var current = r.revision === res.json.current;
        tb.appendChild(el('tr', {}, el('td', { text: r.revision + (current ? ' (running)' : '') }), el('td', { text: fmtTime(r.time) }), el('td', { text: r.note || '' }),
          el('td', {}, el('button', { type: 'button', class: 'link', text: 'Diff to previous', onclick: function () { showDiff(r.revision); } }),
            current ? null : el('button', { type: 'button', class: 'link', text: 'Roll back to this', onclick: function () { rollback(r.revision, res.json.current); } }))));
      });
    });
  }
  function showDiff(n) {
    var box = clear($('hi-detail'));
    Promise.all([api('GET', '/admin/v1/definitions/revisions/' + n), n > 1 ? api('GET', '/admin/v1/definitions/revisions/' + (n - 1)) : Promise.resolve(null)]).then(function (rs) {
      var cur = rs[0].ok ? rs[0].json.document : '', prev = rs[1] && rs[1].ok ? rs[1].json.document : '';
      box.appendChild(el('h2', { text: 'Revision ' + n + ' against ' + (rs[1] && rs[1].ok ? 'revision ' + (n - 1) : 'nothing') }));
      box.appendChild(diffView(prev, cur));
    });
  }
  function rollback(n, current) {
    if (!window.confirm('Apply revision ' + n + "'s document as a new revision?")) return;
    api('POST', '/admin/v1/definitions/revisions/' + n + '/rollback', undefined, { 'If-Match': '"' + current + '"' }).then(function (res) {
      if (res.status === 409) { flash('Not rolled back: someone applied a revision meanwhile. The list is reloaded; look again.'); loadHistory(); return; }
      if (!res.ok) { flash(errText(res)); return; }
      running.loaded = false;
      flash(res.json.changed ? 'Rolled back: revision ' + n + "'s document now runs as revision " + res.json.revision + '.' : 'Nothing to roll back: that document is running.');
      loadHistory();
    });
  }

  // --- visitor ------------------------------------------------------------
  $('vi-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var ref = $('vi-ref').value.trim(), box = clear($('vi-result'));
    if (!ref) return;
    box.appendChild(el('p', { text: 'Looking up…' }));
    Promise.all([api('GET', '/admin/v1/profiles/' + encodeURIComponent(ref)), api('POST', '/admin/v1/explain', { visitor: ref, slots: ['banner-top', 'home-hero', 'home-picks'] })]).then(function (rs) {
      clear(box);
      var prof = rs[0], ex = rs[1];
      if (!prof.ok) { box.appendChild(el('p', { class: 'error', role: 'alert', text: errText(prof) })); return; }
      box.appendChild(profileCard(prof.json));
      if (ex.ok) {
        var segs = ex.json.explain.segments;
        box.appendChild(el('h2', { text: 'Segments' }));
        var p = el('p', { id: 'vi-segments' });
        segs.forEach(function (s) { p.appendChild(el('span', { class: 'tag ' + (s.matched ? 'on' : 'off'), title: s.reason, text: (s.matched ? '✓ ' : '✗ ') + s.id })); });
        box.appendChild(p);
        box.appendChild(el('h2', { text: 'Why this homepage' }));
        var ul = el('ul', { id: 'vi-words' });
        (ex.json.words || []).forEach(function (w) { ul.appendChild(el('li', { text: w })); });
        box.appendChild(ul);
        var why = el('ul');
        segs.filter(function (s) { return s.matched; }).forEach(function (s) { why.appendChild(el('li', {}, el('strong', { text: s.id }), ': ', s.reason)); });
        box.appendChild(el('details', {}, el('summary', { text: 'Every matched segment and its deciding condition' }), why));
        box.appendChild(el('details', {}, el('summary', { text: 'The full trace (JSON)' }), el('pre', { text: JSON.stringify(ex.json.explain, null, 2) })));
      } else {
        box.appendChild(el('p', { class: 'error', text: errText(ex) }));
      }
      box.appendChild(el('h2', { text: 'The demo homepage as this visitor sees it' }));
      box.appendChild(el('iframe', { id: 'vi-preview', title: 'Demo homepage preview', sandbox: '', src: '/admin/v1/preview/demo/?visitor=' + encodeURIComponent(ref) }));
    });
  });
  function profileCard(p) {
    var primary = p.primary || p, card = el('div', { class: 'card', id: 'vi-profile' });
    card.appendChild(el('strong', { text: 'Profile ' + (p.id || '') }));
    var dl = el('ul');
    var ids = [];
    if (primary.email) ids.push(primary.email);
    if (primary.customer_id) ids.push('customer ' + primary.customer_id);
    if (ids.length) dl.appendChild(el('li', { text: 'Known as ' + ids.join(', ') }));
    var fields = primary.fields || {};
    var names = Object.keys(fields);
    if (names.length) dl.appendChild(el('li', { text: 'Fields: ' + names.map(function (k) { var v = fields[k]; return k + ' = ' + (typeof v === 'string' ? v : JSON.stringify(v)); }).join(', ') }));
    var ints = primary.interests || {};
    var on = Object.keys(ints).filter(function (k) { return ints[k] === true || (ints[k] && ints[k].on); });
    if (on.length) dl.appendChild(el('li', { text: 'Interests: ' + on.join(', ') }));
    if (primary.score != null) dl.appendChild(el('li', { text: 'Score: ' + primary.score }));
    if (primary.visits != null) dl.appendChild(el('li', { text: 'Visits: ' + primary.visits + (primary.first_seen ? ', first seen ' + fmtTime(primary.first_seen) : '') }));
    var behaviour = (primary.behaviour || []).slice(0, 8).map(function (b) { return b.total + '× ' + b.event + (b.url ? ' ' + b.url : '') + (b.category ? ' (' + b.category + ')' : '') + (b.sku ? ' ' + b.sku : ''); });
    if (behaviour.length) dl.appendChild(el('li', { text: 'Behaviour: ' + behaviour.join('; ') }));
    var items = (primary.cart && primary.cart.items) || [];
    if (items.length) dl.appendChild(el('li', { text: 'Cart: ' + items.map(function (i) { return i.quantity + '× ' + i.sku; }).join(', ') }));
    Object.keys(p.seasonal || {}).forEach(function (id) {
      var sp = p.seasonal[id], n = (sp.behaviour || []).reduce(function (a, b) { return a + b.total; }, 0);
      dl.appendChild(el('li', { text: 'Seasonal profile ' + id + ': ' + n + ' event(s)' + ((sp.orders || []).length ? ', ' + sp.orders.length + ' order(s)' : '') }));
    });
    card.appendChild(dl);
    card.appendChild(el('details', {}, el('summary', { text: 'Everything held on this profile (JSON)' }), el('pre', { text: JSON.stringify(p, null, 2) })));
    return card;
  }

  // --- start --------------------------------------------------------------
  fetch('/admin/session', { credentials: 'same-origin' }).then(function (r) {
    if (!r.ok) { showSignIn(''); return; }
    return r.json().then(function (j) { csrf = j.csrf; started(); });
  }).catch(function () { showSignIn('The server did not answer.'); });
})();
