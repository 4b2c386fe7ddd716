// Key lookup: a raw key (hashed by the store first) or a key hash: its tier and per-key
// limits, every counter at the store with what remains and when it resets, the overrides
// that apply, and "reset this key".

import * as api from './api.js';
import { $, clear, confirmAction, el, errorText, fillTable, HASH_RE, left, localTime, notify, num, show, windowText } from './dom.js';

let shown = null; // the key hash on display

export function mount() {
  $('key-input').addEventListener('input', (e) => {
    $('key-kind').value = HASH_RE.test(e.target.value.trim()) ? 'hash' : 'raw';
  });
  $('key-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const hash = await resolveKey($('key-input').value.trim(), $('key-kind').value);
    if (!hash) return;
    if (location.hash === `#/keys/${hash}`) lookup(hash);
    else location.hash = `#/keys/${hash}`;
  });
  $('key-reset').addEventListener('click', resetKey);
}

// The hash of what was typed: asks the store to hash a raw key.
export async function resolveKey(text, kind) {
  if (!text) {
    notify('Type an API key or a key hash first.');
    return null;
  }
  if (kind === 'hash') {
    if (!HASH_RE.test(text)) {
      notify('A key hash is 16 hexadecimal digits (as listed on the overview). Choose "a raw key" for an API key.');
      return null;
    }
    return text.toLowerCase();
  }
  try {
    return await api.hashOf(text);
  } catch (err) {
    notify(errorText('Could not hash the key', err));
    return null;
  }
}

export function enter(arg) {
  if (HASH_RE.test(arg)) {
    if ($('key-input').value.trim() === '') {
      $('key-input').value = arg;
      $('key-kind').value = 'hash';
    }
    lookup(arg.toLowerCase());
  } else {
    show($('key-result'), false);
    shown = null;
    $('key-input').focus();
  }
}

export function leave() {}

async function lookup(hash) {
  let v;
  try {
    v = await api.admin('GET', `/v1/keys/${hash}/status?hash=1`);
  } catch (err) {
    if (err.status !== 401) notify(errorText('Could not look up the key', err));
    return;
  }
  shown = v.key;
  $('key-hash').textContent = v.key;
  $('key-edit-limits').href = `#/limits/${v.key}`;
  const l = v.limits;
  const parts = [];
  if (l && l.tier) parts.push(`tier ${l.tier}`);
  if (l && l.limits) for (const [rule, q] of Object.entries(l.limits)) parts.push(`${rule}: ${q.limit} (burst ${q.burst})`);
  $('key-limits').textContent = parts.length ? `${parts.join('; ')} (set by ${l.admin}: ${l.reason})` : 'None: the configuration decides.';

  const list = clear($('key-overrides'));
  for (const o of v.overrides) {
    const effect = o.kind === 'grant' ? (o.unlimited ? 'unlimited' : `limits ×${o.multiplier}`) : o.kind;
    list.append(el('li', {}, el('strong', { text: `${o.kind} ` }), el('span', { text: `${effect}, ` }),
      el('span', { class: 'countdown', data: { until: String(o.until_ms) }, text: left(o.until_ms - api.storeNow()) }),
      el('span', { text: ` left (${o.admin}: ${o.reason})` })));
  }
  if (!v.overrides.length) list.append(el('li', { class: 'muted', text: 'None.' }));

  const now = api.storeNow();
  fillTable($('key-rules'), v.rules.map((r) => r.error ? [r.rule, { text: r.error }, '', '', '', '', '', '', ''] : [
    r.rule,
    r.algorithm,
    { text: num(r.limit), class: 'num' },
    windowText(r.window_ms),
    { text: num(r.burst), class: 'num' },
    { text: num(r.used), class: 'num' },
    { text: `${num(r.remaining)} of ${num(r.capacity)}`, class: r.remaining === 0 ? 'num bad' : 'num' },
    { node: el('span', { class: 'countdown', data: { until: String(now + r.reset_after_ms) }, text: left(r.reset_after_ms) }) },
    localTime(Date.parse(r.reset_at)),
  ]), 'No counter at the store for this key (no global rule has counted it, or they expired).');
  show($('key-result'), true);
}

async function resetKey() {
  if (!shown) return;
  const hash = shown;
  const done = await confirmAction({
    title: 'Reset this key?',
    lines: [`Key ${hash}: its counters at the store are deleted.`, 'Every global rule starts afresh for this key. The audit log keeps their state before the reset.'],
    confirmLabel: 'Reset the key',
    danger: true,
    run: (who) => api.admin('POST', `/v1/keys/${hash}/reset?hash=1`, who),
  });
  if (!done) return;
  const rules = done.result.reset;
  notify(rules.length ? `Key ${hash} reset: ${rules.join(', ')}.` : `Key ${hash} had no counters at the store: nothing to reset.`, 'ok');
  lookup(hash);
}

// Countdowns on every page tick once a second.
setInterval(() => {
  const now = api.storeNow();
  for (const node of document.querySelectorAll('.countdown[data-until]')) {
    node.textContent = left(Number(node.dataset.until) - now);
  }
}, 1000);
