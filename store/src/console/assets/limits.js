// Per-key limits: a key's own tier and, per rule, its own limit and burst.

import * as api from './api.js';
import { $, clear, confirmAction, el, errorText, HASH_RE, localTime, notify, show } from './dom.js';
import { resolveKey } from './keys.js';

let current = null; // key hash being edited

export function mount() {
  $('lim-key').addEventListener('input', (e) => {
    $('lim-kind').value = HASH_RE.test(e.target.value.trim()) ? 'hash' : 'raw';
  });
  $('lim-key-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const hash = await resolveKey($('lim-key').value.trim(), $('lim-kind').value);
    if (!hash) return;
    if (location.hash === `#/limits/${hash}`) load(hash);
    else location.hash = `#/limits/${hash}`;
  });
  $('lim-add-rule').addEventListener('click', () => addRow('', '', ''));
  $('lim-editor').addEventListener('submit', (e) => {
    e.preventDefault();
    save();
  });
  $('lim-remove').addEventListener('click', removeAll);
}

export function enter(arg) {
  if (HASH_RE.test(arg)) {
    if ($('lim-key').value.trim() === '') {
      $('lim-key').value = arg;
      $('lim-kind').value = 'hash';
    }
    load(arg.toLowerCase());
  } else {
    current = null;
    show($('lim-editor'), false);
  }
}

export function leave() {}

function addRow(rule, limit, burst) {
  const body = $('lim-rules').tBodies[0];
  const empty = body.querySelector('td.empty');
  if (empty) empty.parentElement.remove();
  const input = (name, value, type, label) => el('input', { name, value, type, min: type === 'number' ? '1' : undefined, step: type === 'number' ? '1' : undefined, 'aria-label': label, autocomplete: 'off', spellcheck: 'false' });
  const tr = el('tr', {},
    el('td', { label: 'Rule' }, input('rule', rule, 'text', 'Rule name')),
    el('td', { label: 'Limit' }, input('limit', limit, 'number', 'Limit')),
    el('td', { label: 'Burst' }, input('burst', burst, 'number', 'Burst')),
    el('td', { label: '' }, el('button', { type: 'button', text: 'Remove row', on: { click: () => tr.remove() } })));
  body.append(tr);
}

async function load(hash) {
  let v;
  try {
    v = await api.admin('GET', `/v1/keys/${hash}/limits?hash=1`);
  } catch (err) {
    if (err.status !== 401) notify(errorText('Could not load the per-key limits', err));
    return;
  }
  current = v.key;
  $('lim-hash').textContent = v.key;
  $('lim-current').textContent = v.updated_at
    ? `Last set ${localTime(v.updated_ms)} by ${v.admin}: ${v.reason}`
    : 'This key has no per-key limits: the configuration (its tiers) decides.';
  $('lim-tier').value = v.tier || '';
  clear($('lim-rules').tBodies[0]);
  for (const [rule, q] of Object.entries(v.limits || {})) addRow(rule, String(q.limit), String(q.burst));
  if (!Object.keys(v.limits || {}).length) {
    $('lim-rules').tBodies[0].append(el('tr', {}, el('td', { class: 'empty', colspan: 4, text: 'No rule of its own: "Add a rule" to give this key its own limit.' })));
  }
  show($('lim-editor'), true);
}

// The PUT body from the editor, or an error text.
function editorBody() {
  const limits = {};
  for (const tr of $('lim-rules').tBodies[0].rows) {
    const get = (name) => tr.querySelector(`input[name="${name}"]`)?.value.trim() ?? '';
    const rule = get('rule');
    if (tr.querySelector('td.empty')) continue;
    if (!rule) return { error: 'Every row needs a rule name (as in the configuration).' };
    const limit = Number(get('limit'));
    if (!Number.isInteger(limit) || limit < 1) return { error: `${rule}: the limit must be a whole number above 0.` };
    const entry = { limit };
    if (get('burst') !== '') {
      const burst = Number(get('burst'));
      if (!Number.isInteger(burst) || burst < 1) return { error: `${rule}: the burst must be a whole number above 0, or empty.` };
      entry.burst = burst;
    }
    if (limits[rule]) return { error: `${rule} is listed twice.` };
    limits[rule] = entry;
  }
  const tier = $('lim-tier').value.trim();
  return { body: tier ? { tier, limits } : { limits } };
}

async function save() {
  if (!current) return;
  const hash = current;
  const f = editorBody();
  if (f.error) {
    notify(f.error);
    return;
  }
  const lines = [`Key ${hash}: its per-key limits are replaced by:`];
  lines.push(f.body.tier ? `tier ${f.body.tier}` : 'no tier of its own');
  for (const [rule, q] of Object.entries(f.body.limits)) lines.push(`${rule}: limit ${q.limit}, burst ${q.burst ?? q.limit}`);
  const done = await confirmAction({
    title: 'Save per-key limits?',
    lines,
    confirmLabel: 'Save',
    run: (who) => api.admin('PUT', `/v1/keys/${hash}/limits?hash=1`, { ...f.body, ...who }),
  });
  if (!done) return;
  notify(`Per-key limits of ${hash} saved; proxies apply them within one poll interval.`, 'ok');
  load(hash);
}

async function removeAll() {
  if (!current) return;
  const hash = current;
  const done = await confirmAction({
    title: 'Remove all per-key limits?',
    lines: [`Key ${hash} goes back to what the configuration gives it.`],
    confirmLabel: 'Remove',
    danger: true,
    run: (who) => api.admin('DELETE', `/v1/keys/${hash}/limits${api.query({ hash: 1, ...who })}`),
  });
  if (!done) return;
  notify(done.result.deleted ? `Per-key limits of ${hash} removed.` : `Key ${hash} had no per-key limits.`, 'ok');
  load(hash);
}
