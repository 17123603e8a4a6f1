/* untild console: a little vanilla JavaScript on the JSON API (/api/v1,
 * docs/openapi.yaml). No framework, no build step. Text from mail (subjects,
 * addresses, reasons) only ever goes into the page as text nodes, never as
 * HTML. A browser session is the HttpOnly cookie the API sets at login; every
 * change carries the session's CSRF token in X-CSRF-Token. An endpoint this
 * untild does not have (404) leaves its part of the page with a note. */
'use strict';
(function () {
  const OLD_DAYS = 21;            // a held message older than this gets a warning
  const SVGNS = 'http://www.w3.org/2000/svg';
  const S = { user: null, admin: false, csrf: null, now: null, heldNext: null, windows: new Map() };

  const $ = (id) => document.getElementById(id);

  /* An element with attributes (data-*, aria-*, class...) and children
   * (strings become text nodes). */
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }

  function svg(tag, attrs, ...kids) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }

  function say(text) { $('status').textContent = text; }

  /* One API call: {status, data}; status 0 when untild cannot be reached. */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && S.csrf) headers['X-CSRF-Token'] = S.csrf;
    let r;
    try {
      r = await fetch('/api/v1/' + path, {
        method, headers, credentials: 'same-origin', cache: 'no-store',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      return { status: 0, data: { reason: 'cannot reach untild' } };
    }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.status === 401 && path !== 'login' && path !== 'me' && S.user) {
      showLogin('Your session has ended: log in again.');
    }
    return { status: r.status, data };
  }

  function why(res) {
    const d = res.data || {};
    if (res.status === 0) return 'Cannot reach untild.';
    return (d.field ? d.field + ': ' : '') + (d.reason || d.error || 'HTTP ' + res.status);
  }

  /* "2027-01-10T10:00:00+01:00" as "2027-01-10 10:00" (untild's zone). */
  function shortTime(s) {
    if (!s) return '';
    if (s === 'never') return 'never';
    return s.slice(0, 16).replace('T', ' ');
  }

  function ageDays(created) {
    const now = S.now ? Date.parse(S.now) : Date.now();
    const t = Date.parse(created);
    return Number.isNaN(t) || Number.isNaN(now) ? 0 : (now - t) / 86400000;
  }

  function ageText(days) {
    if (days >= 1) return Math.floor(days) + (Math.floor(days) === 1 ? ' day' : ' days');
    const h = Math.floor(days * 24);
    return h >= 1 ? h + (h === 1 ? ' hour' : ' hours') : 'under an hour';
  }

  /* ---- session ---------------------------------------------------- */

  function showLogin(msg) {
    S.user = null; S.csrf = null; S.admin = false;
    $('app').hidden = true;
    $('whoami').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = msg || '';
    $('login-user').focus();
  }

  async function startSession(me) {
    S.user = me.user; S.admin = !!me.admin; S.csrf = me.csrf || null;
    $('login').hidden = true;
    $('whoami-name').textContent = me.user + (S.admin ? ' (admin)' : '');
    $('whoami').hidden = false;
    $('app').hidden = false;
    $('team-section').hidden = !S.admin;
    $('team-link').hidden = !S.admin;
    $('held-title').textContent = S.admin ? 'Held mail of every rep' : 'My held mail';
    $('windows-title').textContent = S.admin ? 'Windows' : 'My windows';
    $('followups-title').textContent = S.admin ? 'Follow-ups due' : 'My follow-ups due';
    document.body.dataset.role = S.admin ? 'admin' : 'rep';
    await refresh();
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const user = $('login-user').value.trim(), password = $('login-password').value;
    if (!user || !password) {
      $('login-error').textContent = 'Enter your user name and password.';
      return;
    }
    $('login-submit').disabled = true;
    const res = await api('POST', 'login', { user, password });
    $('login-submit').disabled = false;
    $('login-password').value = '';
    if (res.status === 200 && res.data) {
      await startSession(res.data);
      $('main').focus();
    } else if (res.status === 404) {
      $('login-error').textContent = 'This untild has no browser login: use untilctl or an API token.';
    } else {
      $('login-error').textContent = res.status === 401 ? 'Wrong user name or password.' : why(res);
    }
  }

  async function onLogout() {
    await api('POST', 'logout', {});
    say('Logged out.');
    showLogin('');
  }

  async function refresh() {
    const st = await api('GET', 'status');
    if (st.status === 200 && st.data) S.now = st.data.now || null;
    // windows first: a held message's "why" names its window's reason
    await Promise.all([loadWindows().then(() => loadHeld(false)), loadFollowups(), S.admin ? loadTeam() : null]);
  }

  /* ---- held mail -------------------------------------------------- */

  async function loadHeld(more) {
    const list = $('held-list');
    const q = 'held?limit=100' + (more && S.heldNext ? '&after=' + encodeURIComponent(S.heldNext) : '');
    const res = await api('GET', q);
    list.setAttribute('aria-busy', 'false');
    if (!more) list.replaceChildren();
    if (res.status !== 200) {
      list.append(el('p', { class: 'error', text: 'Cannot list held mail: ' + why(res) }));
      return;
    }
    const items = res.data.items || [];
    S.heldNext = res.data.next || null;
    $('held-more').hidden = !S.heldNext;
    for (const m of items) list.append(heldItem(m));
    if (!list.children.length) list.append(el('p', { class: 'empty', text: 'No held mail.' }));
  }

  function heldItem(m) {
    const rcpts = (m.recipients || []).filter((r) => r.state === 'held');
    const shown = rcpts.length ? rcpts : (m.recipients || []);
    const days = ageDays(m.created);
    const old = days > OLD_DAYS;
    const reasons = [...new Set(shown.map(whyHeld).filter(Boolean))];
    const item = el('article', { class: 'item held' + (old ? ' old' : ''), 'data-id': m.id, 'data-rep': m.rep || '',
                                 'data-age-days': Math.floor(days), 'aria-labelledby': 'held-h-' + m.id });
    const dl = el('dl', {},
      el('dt', { text: 'To' }), el('dd', { class: 'to', text: shown.map((r) => r.address).join(', ') }),
      el('dt', { text: 'Why' }), el('dd', { class: 'why', text: reasons.join('; ') || m.state }),
      el('dt', { text: 'Until' }), el('dd', { class: 'until', text: shortTime(m.release_at) }),
      el('dt', { text: 'Held for' }), el('dd', { class: 'age', text: ageText(days) }));
    if (S.admin || m.rep) dl.append(el('dt', { text: 'Rep' }), el('dd', { class: 'rep', text: m.rep || '-' }));
    item.append(el('h3', { id: 'held-h-' + m.id, text: m.subject || '(no subject)' }), dl);
    if (old) {
      item.append(el('p', { class: 'warning', role: 'note',
                            text: '\u26a0 Held for over ' + Math.floor(OLD_DAYS / 7) + ' weeks: release it or discard it.' }));
    }
    item.append(heldActions(m, item));
    return item;
  }

  function whyHeld(r) {
    if (r.reason) return r.reason;
    const w = r.window ? S.windows.get(r.window) : null;
    if (!w) return r.window ? 'window ' + r.window : '';
    return 'quiet until ' + shortTime(w.until) + (w.reason ? ': ' + w.reason : '');
  }

  function heldActions(m, item) {
    const rid = 'release-reason-' + m.id;
    const err = el('p', { class: 'error', role: 'alert' });
    const reason = el('input', { id: rid, name: 'reason', autocomplete: 'off', class: 'release-reason' });
    const form = el('form', { class: 'actions release-form', novalidate: true },
      el('div', { class: 'grow' }, el('label', { for: rid, text: 'Reason for releasing' }), reason),
      el('button', { type: 'submit', class: 'release', text: 'Release' }));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!reason.value.trim()) {
        err.textContent = 'Say why it may go now.';
        reason.focus();
        return;
      }
      const res = await api('POST', 'held/' + encodeURIComponent(m.id) + '/release', { reason: reason.value.trim() });
      if (res.status === 200) {
        item.remove();
        say('Released "' + (m.subject || m.id) + '": it is being sent.');
      } else {
        err.textContent = 'Not released: ' + why(res);
      }
    });
    const confirmRow = el('div', { class: 'confirm', hidden: true });
    const discard = el('button', { type: 'button', class: 'secondary discard', text: 'Discard' });
    const yes = el('button', { type: 'button', class: 'danger discard-yes', text: 'Yes, discard it' });
    const no = el('button', { type: 'button', class: 'secondary discard-no', text: 'Keep it' });
    confirmRow.append(el('span', { text: 'Discard this message for good?' }), yes, no);
    discard.addEventListener('click', () => { confirmRow.hidden = false; no.focus(); });
    no.addEventListener('click', () => { confirmRow.hidden = true; discard.focus(); });
    yes.addEventListener('click', async () => {
      const res = await api('POST', 'held/' + encodeURIComponent(m.id) + '/discard', {});
      if (res.status === 200) {
        item.remove();
        say('Discarded "' + (m.subject || m.id) + '".');
      } else {
        err.textContent = 'Not discarded: ' + why(res);
        confirmRow.hidden = true;
      }
    });
    return el('div', {}, form, el('p', {}, discard), confirmRow, err);
  }

  /* ---- windows ---------------------------------------------------- */

  async function loadWindows() {
    const list = $('windows-list');
    const res = await api('GET', 'windows?limit=1000');
    list.setAttribute('aria-busy', 'false');
    list.replaceChildren();
    if (res.status !== 200) {
      list.append(el('p', { class: 'error', text: 'Cannot list windows: ' + why(res) }));
      return;
    }
    S.windows = new Map((res.data.items || []).map((w) => [w.id, w]));
    for (const w of res.data.items || []) list.append(windowItem(w));
    if (!list.children.length) list.append(el('p', { class: 'empty', text: 'No windows.' }));
  }

  function windowItem(w) {
    const who = (w.who || []).join(', ');
    const item = el('article', { class: 'item window', 'data-id': w.id, 'data-who': who });
    item.append(el('h3', { text: who }), el('dl', {},
      el('dt', { text: 'Until' }), el('dd', { class: 'until', text: shortTime(w.until) }),
      el('dt', { text: 'Then' }), el('dd', { class: 'action', text: w.action || '' }),
      el('dt', { text: 'Reason' }), el('dd', { class: 'reason', text: w.reason || '' }),
      w.owner ? el('dt', { text: 'Owner' }) : null, w.owner ? el('dd', { text: w.owner }) : null));
    if (w.source && w.source !== 'runtime') {
      item.append(el('p', { class: 'hint', text: 'From ' + (w.file || w.source) + ': change it there.' }));
      return item;
    }
    const err = el('p', { class: 'error', role: 'alert' });
    const change = el('button', { type: 'button', class: 'secondary change', text: 'Change' });
    const end = el('button', { type: 'button', class: 'secondary end', text: 'End now' });
    const confirmRow = el('div', { class: 'confirm', hidden: true });
    const yes = el('button', { type: 'button', class: 'danger end-yes', text: 'Yes, end it' });
    const no = el('button', { type: 'button', class: 'secondary end-no', text: 'Keep it' });
    confirmRow.append(el('span', { text: 'End this window now? Mail it holds is released.' }), yes, no);
    change.addEventListener('click', () => editWindow(w));
    end.addEventListener('click', () => { confirmRow.hidden = false; no.focus(); });
    no.addEventListener('click', () => { confirmRow.hidden = true; end.focus(); });
    yes.addEventListener('click', async () => {
      const res = await api('DELETE', 'windows/' + encodeURIComponent(w.id));
      if (res.status === 200) {
        say('Ended the window for ' + who + '.');
        await reloadWindows();
      } else {
        err.textContent = 'Not ended: ' + why(res);
        confirmRow.hidden = true;
      }
    });
    item.append(el('div', { class: 'actions' }, change, end), confirmRow, err);
    return item;
  }

  /* After a window changed: held mail may have gone, follow-ups moved. */
  function reloadWindows() {
    return Promise.all([loadWindows().then(() => loadHeld(false)), loadFollowups()]);
  }

  function editWindow(w) {
    $('window-id').value = w.id;
    $('window-who').value = (w.who || []).join(',');
    $('window-who').readOnly = true;            // a change keeps the contact
    $('window-until').value = w.until && w.until !== 'never' ? w.until.slice(0, 10) : '';
    $('window-action').value = w.action || 'hold';
    $('window-reason').value = w.reason || '';
    $('window-form-legend').textContent = 'Change the window for ' + (w.who || []).join(', ');
    $('window-submit').textContent = 'Save change';
    $('window-cancel').hidden = false;
    $('window-until').focus();
  }

  function resetWindowForm() {
    $('window-form').reset();
    $('window-id').value = '';
    $('window-who').readOnly = false;
    $('window-form-legend').textContent = 'Add a window';
    $('window-submit').textContent = 'Add window';
    $('window-cancel').hidden = true;
    $('window-error').textContent = '';
  }

  async function onWindowSubmit(ev) {
    ev.preventDefault();
    const id = $('window-id').value;
    const who = $('window-who').value.trim();
    const body = { until: $('window-until').value, action: $('window-action').value };
    const reason = $('window-reason').value.trim();
    if (reason || id) body.reason = reason;     // a change with no reason clears it
    if (!id) body.who = who;                    // a change keeps the contact
    if (!who || !body.until) {
      $('window-error').textContent = 'A contact and a date are needed.';
      (who ? $('window-until') : $('window-who')).focus();
      return;
    }
    const res = id ? await api('PATCH', 'windows/' + encodeURIComponent(id), body)
                   : await api('POST', 'windows', body);
    if (res.status === 200 || res.status === 201) {
      say((id ? 'Changed' : 'Added') + ' the window for ' + who + '.');
      resetWindowForm();
      await reloadWindows();
    } else if (id && (res.status === 404 || res.status === 405) && !(res.data && res.data.field)) {
      $('window-error').textContent = 'This untild cannot change a window: end it and add a new one.';
    } else {
      $('window-error').textContent = why(res);
    }
  }

  /* ---- follow-ups ------------------------------------------------- */

  async function loadFollowups() {
    const list = $('followups-list');
    const res = await api('GET', 'followups');
    list.setAttribute('aria-busy', 'false');
    list.replaceChildren();
    if (res.status === 404) {
      list.append(el('p', { class: 'empty', text: 'Follow-ups are not available on this untild.' }));
      return;
    }
    if (res.status !== 200) {
      list.append(el('p', { class: 'error', text: 'Cannot list follow-ups: ' + why(res) }));
      return;
    }
    const items = Array.isArray(res.data) ? res.data : (res.data.items || []);
    for (const f of items) {
      const who = f.contact || f.address || f.who || '';
      list.append(el('article', { class: 'item followup', 'data-window': f.window || '', 'data-contact': who },
        el('h3', { text: Array.isArray(who) ? who.join(', ') : who }),
        el('dl', {},
          el('dt', { text: 'Due' }), el('dd', { class: 'due', text: shortTime(f.date || f.due || '') }),
          f.reason ? el('dt', { text: 'About' }) : null, f.reason ? el('dd', { text: f.reason }) : null,
          f.held ? el('dt', { text: 'Held mail' }) : null, f.held ? el('dd', { text: String(f.held) }) : null,
          f.sent ? el('dt', { text: 'Reminder' }) : null, f.sent ? el('dd', { text: 'sent' }) : null)));
    }
    if (!list.children.length) list.append(el('p', { class: 'empty', text: 'No follow-ups due.' }));
  }

  /* ---- team (admins) ---------------------------------------------- */

  async function loadTeam() {
    const res = await api('GET', 'report');
    const missing = $('team-missing');
    missing.hidden = true;
    if (res.status !== 200 || !res.data) {
      missing.hidden = false;
      missing.textContent = res.status === 404 ? 'The team report is not available on this untild.'
                                                : 'Cannot load the team report: ' + why(res);
      return;
    }
    const r = res.data;
    const rows = Array.isArray(r.weeks) ? r.weeks : [];
    const weeks = sumBy(rows, (w) => w.week + '\u0000' + (w.rep || '-'), (w) => ({ week: w.week, rep: w.rep || '-' }));
    drawEarly($('chart-early'), $('table-early'), weeks);
    drawKinds($('chart-kinds'), weeks, r.by_rep || []);
    drawPressed($('pressed'), r.by_contact || []);
    drawAround($('around'), $('around-body'), rows);
  }

  /* Rows summed (held, flagged, rejected) by key; first(row) starts a sum. */
  function sumBy(rows, key, first) {
    const m = new Map();
    for (const w of rows) {
      const k = key(w);
      const t = m.get(k) || Object.assign(first(w), { held: 0, flagged: 0, rejected: 0 });
      t.held += w.held || 0; t.flagged += w.flagged || 0; t.rejected += w.rejected || 0;
      m.set(k, t);
    }
    return [...m.values()];
  }

  /* Mail sent around the gate: what the Sent-folder watcher (channel imap)
   * caught, per rep, beside the other channels. */
  function drawAround(box, body, rows) {
    const withChannel = rows.filter((w) => w.channel);
    box.hidden = !withChannel.length;
    if (!withChannel.length) return;
    const sums = sumBy(withChannel, (w) => (w.rep || '-') + '\u0000' + w.channel,
                       (w) => ({ rep: w.rep || '-', channel: w.channel }));
    const table = el('table', {}, el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Rep' }),
      el('th', { scope: 'col', text: 'Channel' }), el('th', { scope: 'col', text: 'Held' }),
      el('th', { scope: 'col', text: 'Flagged' }), el('th', { scope: 'col', text: 'Rejected' }))));
    const tb = el('tbody');
    for (const t of sums.sort((a, b) => (a.rep + a.channel).localeCompare(b.rep + b.channel))) {
      tb.append(el('tr', { 'data-rep': t.rep, 'data-channel': t.channel, class: t.channel === 'imap' ? 'around' : null },
        el('td', { text: t.rep }), el('td', { text: t.channel === 'imap' ? 'around the gate (Sent folder)' : t.channel }),
        el('td', { text: t.held }), el('td', { text: t.flagged }), el('td', { text: t.rejected })));
    }
    table.append(tb);
    body.replaceChildren(table);
  }

  const total = (x) => (x.held || 0) + (x.flagged || 0) + (x.rejected || 0);

  /* Contact-too-early per rep per week: one line per rep, a point per week
   * (circle.point with data-week, data-rep, data-count). */
  function drawEarly(box, tableBox, weeks) {
    box.replaceChildren();
    tableBox.replaceChildren();
    if (!weeks.length) {
      box.append(el('p', { class: 'empty', text: 'Nothing held, flagged or rejected in this period.' }));
      return;
    }
    const labels = [...new Set(weeks.map((w) => w.week))].sort();
    const reps = [...new Set(weeks.map((w) => w.rep || '-'))].sort();
    const count = new Map(weeks.map((w) => [w.week + '\u0000' + (w.rep || '-'), w]));
    const max = Math.max(1, ...weeks.map(total));
    const W = 640, H = 280, L = 40, R = 40, T = 16, B = 40;
    const x = (i) => L + (labels.length === 1 ? (W - L - R) / 2 : i * (W - L - R) / (labels.length - 1));
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, 'data-chart': 'contact-too-early', 'aria-hidden': 'true' });
    for (const v of niceTicks(max)) {
      g.append(svg('line', { class: 'grid', x1: L, x2: W - R, y1: y(v), y2: y(v) }),
               svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, String(v)));
    }
    g.append(svg('line', { class: 'axis', x1: L, x2: W - R, y1: H - B, y2: H - B }));
    labels.forEach((wk, i) => g.append(svg('text', { x: x(i), y: H - B + 18, 'text-anchor': 'middle' }, wk)));
    reps.forEach((rep, si) => {
      const cls = 'series-' + (si % 6) + (si % 2 ? ' dashed' : '');
      // reps with the same figures would hide each other: a small nudge each
      const dx = (si - (reps.length - 1) / 2) * Math.min(4, 24 / reps.length);
      const pts = labels.map((wk, i) => [i, count.get(wk + '\u0000' + rep)]);
      const d = pts.map(([i, w]) => `${x(i) + dx},${y(w ? total(w) : 0)}`).join(' ');
      g.append(svg('polyline', { class: 'line ' + cls, points: d, 'data-rep': rep }));
      for (const [i, w] of pts) {
        const n = w ? total(w) : 0;
        g.append(svg('circle', { class: 'point ' + cls, cx: x(i) + dx, cy: y(n), r: 4, 'data-week': labels[i],
                                 'data-rep': rep, 'data-count': n, 'data-held': w ? w.held || 0 : 0,
                                 'data-flagged': w ? w.flagged || 0 : 0, 'data-rejected': w ? w.rejected || 0 : 0 },
                     svg('title', {}, `${rep}, week ${labels[i]}: ${n}`)));
      }
    });
    box.append(g, legend(reps.map((rep, si) => [rep, 'series-' + (si % 6)])));
    const table = el('table', {}, el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: 'Week' }),
      el('th', { scope: 'col', text: 'Rep' }), el('th', { scope: 'col', text: 'Held' }),
      el('th', { scope: 'col', text: 'Flagged' }), el('th', { scope: 'col', text: 'Rejected' }))));
    const tb = el('tbody');
    for (const w of weeks) {
      tb.append(el('tr', {}, el('td', { text: w.week }), el('td', { text: w.rep || '-' }),
        el('td', { text: w.held || 0 }), el('td', { text: w.flagged || 0 }), el('td', { text: w.rejected || 0 })));
    }
    table.append(tb);
    tableBox.append(table);
  }

  function niceTicks(max) {
    const step = Math.max(1, Math.ceil(max / 4));
    const t = [];
    for (let v = 0; v <= max; v += step) t.push(v);
    return t;
  }

  function legend(entries) {
    const ul = el('ul', { class: 'legend' });
    for (const [name, cls] of entries) {
      ul.append(el('li', {}, el('span', { class: 'swatch ' + cls, 'aria-hidden': 'true' }), name));
    }
    return ul;
  }

  /* Held vs flagged vs rejected: a stacked bar per week (per rep when the
   * report has no weeks); rect.bar with data-kind, data-count. */
  function drawKinds(box, weeks, byRep) {
    box.replaceChildren();
    const groups = new Map();
    const src = weeks.length ? weeks.map((w) => [w.week, w]) : byRep.map((r) => [r.id || '-', r]);
    for (const [k, w] of src) {
      const g = groups.get(k) || { held: 0, flagged: 0, rejected: 0 };
      g.held += w.held || 0; g.flagged += w.flagged || 0; g.rejected += w.rejected || 0;
      groups.set(k, g);
    }
    if (!groups.size) {
      box.append(el('p', { class: 'empty', text: 'Nothing to show.' }));
      return;
    }
    const keys = [...groups.keys()].sort();
    const max = Math.max(1, ...keys.map((k) => total(groups.get(k))));
    const W = 640, H = 240, L = 40, B = 40, T = 12;
    const bw = Math.min(60, (W - L - 16) / keys.length * 0.7);
    const step = (W - L - 16) / keys.length;
    const s = svg('svg', { viewBox: `0 0 ${W} ${H}`, 'data-chart': 'kinds', 'aria-hidden': 'true' });
    for (const v of niceTicks(max)) {
      const y = H - B - (H - B - T) * v / max;
      s.append(svg('line', { class: 'grid', x1: L, x2: W - 16, y1: y, y2: y }),
               svg('text', { x: L - 6, y: y + 4, 'text-anchor': 'end' }, String(v)));
    }
    s.append(svg('line', { class: 'axis', x1: L, x2: W - 16, y1: H - B, y2: H - B }));
    keys.forEach((k, i) => {
      let base = H - B;
      const x0 = L + i * step + (step - bw) / 2;
      for (const kind of ['held', 'flagged', 'rejected']) {
        const n = groups.get(k)[kind];
        const h = (H - B - T) * n / max;
        base -= h;
        s.append(svg('rect', { class: 'bar bar-' + kind, x: x0, y: base, width: bw, height: h,
                               'data-group': k, 'data-kind': kind, 'data-count': n },
                     svg('title', {}, `${k}: ${n} ${kind}`)));
      }
      s.append(svg('text', { x: x0 + bw / 2, y: H - B + 18, 'text-anchor': 'middle' }, k));
    });
    box.append(s, legend([['held', 'bar-held'], ['flagged', 'bar-flagged'], ['rejected', 'bar-rejected']]));
  }

  function drawPressed(ol, byContact) {
    ol.replaceChildren();
    const top = byContact.filter((c) => total(c) > 0).sort((a, b) => total(b) - total(a)).slice(0, 10);
    for (const c of top) {
      ol.append(el('li', { 'data-contact': c.id, 'data-count': total(c),
                           text: `${c.id}: ${total(c)} (held ${c.held || 0}, flagged ${c.flagged || 0}, ` +
                                 `rejected ${c.rejected || 0})` }));
    }
    if (!top.length) ol.append(el('li', { class: 'empty', text: 'No contact was pressed in this period.' }));
  }

  /* ---- start ------------------------------------------------------ */

  async function start() {
    $('login-form').addEventListener('submit', onLogin);
    $('logout').addEventListener('click', onLogout);
    $('window-form').addEventListener('submit', onWindowSubmit);
    $('window-cancel').addEventListener('click', resetWindowForm);
    $('held-more').addEventListener('click', () => loadHeld(true));
    document.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Escape') return;
      for (const c of document.querySelectorAll('.confirm:not([hidden])')) c.hidden = true;
    });
    const me = await api('GET', 'me');
    if (me.status === 200 && me.data && me.data.user) await startSession(me.data);
    else showLogin('');
    document.body.dataset.ready = '1';
  }

  document.addEventListener('DOMContentLoaded', start);
})();
