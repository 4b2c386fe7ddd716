// DOM helpers. Everything the store sends is put on the page as text (textContent,
// createElement): a reason like <img src=x onerror=alert(1)> shows those characters.

export const $ = (id) => document.getElementById(id);

// el('td', {text: 'x', class: 'num', label: 'Rule'}, child, ...)
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === 'text') node.textContent = String(v);
    else if (k === 'class') node.className = v;
    else if (k === 'label') node.dataset.label = v;
    else if (k === 'data') Object.assign(node.dataset, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function show(node, visible = true) {
  node.hidden = !visible;
}

// Fill a table body: rows are arrays of cells (a string/number, a Node, or {text, class, node}).
export function fillTable(table, rows, emptyText) {
  const body = clear(table.tBodies[0]);
  const labels = [...table.tHead.rows[0].cells].map((c) => c.textContent);
  if (rows.length === 0 && emptyText) {
    body.append(el('tr', {}, el('td', { class: 'empty', colspan: labels.length, text: emptyText })));
    return;
  }
  for (const row of rows) {
    const tr = el('tr', row.class ? { class: row.class } : {});
    const cells = Array.isArray(row) ? row : row.cells;
    cells.forEach((cell, i) => {
      const spec = cell !== null && typeof cell === 'object' && !(cell instanceof Node) ? cell : { value: cell };
      const td = el('td', { label: labels[i] || '', class: spec.class });
      if (spec.node) td.append(spec.node);
      else if (spec.value instanceof Node) td.append(spec.value);
      else td.textContent = spec.text !== undefined ? String(spec.text) : spec.value === null || spec.value === undefined ? '–' : String(spec.value);
      tr.append(td);
    });
    body.append(tr);
  }
}

// The notice bar: every error is shown in words, and stays until dismissed or replaced.
export function notify(message, kind = 'error') {
  const box = $('notice');
  $('notice-text').textContent = message;
  box.className = 'notice ' + (kind === 'error' ? 'error-notice' : 'ok-notice');
  box.hidden = false;
  if (kind !== 'error') {
    const shown = message;
    setTimeout(() => { if ($('notice-text').textContent === shown) box.hidden = true; }, 6000);
  }
}

export function clearNotice() {
  $('notice').hidden = true;
}

export function errorText(what, err) {
  if (err && err.status === 0) return `${what}: ${err.message}`;
  if (err && err.status) return `${what}: ${err.message} (HTTP ${err.status}${err.code ? ', ' + err.code : ''}).`;
  return `${what}: ${err && err.message ? err.message : String(err)}`;
}

// Ask before every write: shows what will happen, asks who and why. Resolves to
// {admin, reason}, or null when cancelled. `run` does the write; its error is shown in the
// dialog, which stays open so nothing typed is lost.
export function confirmAction({ title, lines, confirmLabel = 'Confirm', danger = false, run }) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  const list = clear($('confirm-lines'));
  for (const l of lines) list.append(el('li', { text: l }));
  const admin = $('confirm-admin');
  admin.value = localStorage.getItem('tollgate.admin') || $('admin-name').value || '';
  const reason = $('confirm-reason');
  reason.value = '';
  const err = $('confirm-error');
  err.hidden = true;
  const ok = $('confirm-ok');
  ok.textContent = confirmLabel;
  ok.className = danger ? 'danger' : 'primary';
  ok.disabled = false;
  return new Promise((resolve) => {
    const form = $('confirm-form');
    const cancel = $('confirm-cancel');
    const done = (value) => {
      form.removeEventListener('submit', onSubmit);
      cancel.removeEventListener('click', onCancel);
      dialog.removeEventListener('cancel', onCancel);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onCancel = (e) => { e.preventDefault(); done(null); };
    const onSubmit = async (e) => {
      e.preventDefault();
      const who = { admin: admin.value.trim(), reason: reason.value.trim() };
      if (!who.admin || !who.reason) {
        err.textContent = 'Both the admin name and the reason are required: they go into the audit log.';
        err.hidden = false;
        return;
      }
      localStorage.setItem('tollgate.admin', who.admin);
      $('admin-name').value = who.admin;
      ok.disabled = true;
      try {
        const result = await run(who);
        done({ ...who, result });
      } catch (e2) {
        err.textContent = errorText('The store refused', e2);
        err.hidden = false;
        ok.disabled = false;
      }
    };
    form.addEventListener('submit', onSubmit);
    cancel.addEventListener('click', onCancel);
    dialog.addEventListener('cancel', onCancel);
    dialog.showModal();
    (admin.value ? reason : admin).focus();
  });
}

// 3725000 -> "1h2m5s"; negative or zero -> "expired".
export function left(ms) {
  if (ms <= 0) return 'expired';
  let s = Math.ceil(ms / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${d}d${h}h${m}m`;
  if (h) return `${h}h${m}m${s}s`;
  if (m) return `${m}m${s}s`;
  return `${s}s`;
}

export function windowText(ms) {
  if (ms === null || ms === undefined) return '–';
  const units = [[86400000, 'd'], [3600000, 'h'], [60000, 'm'], [1000, 's']];
  for (const [n, u] of units) if (ms >= n && ms % n === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}

export function localTime(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function num(n) {
  if (n === null || n === undefined) return '–';
  return Number(n).toLocaleString('en-US');
}

export function rate(n) {
  if (n === null || n === undefined) return '…';
  if (n === 0) return '0';
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2);
}

export function percent(x) {
  return `${(Number(x || 0) * 100).toFixed(1)}%`;
}

export const HASH_RE = /^[0-9a-fA-F]{16}$/;
