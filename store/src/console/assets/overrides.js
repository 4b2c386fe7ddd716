// Overrides: the list (expiring ones count down), add allow_key / allow_ip / emergency /
// grant with a TTL or an expiry time, remove. Every write is confirmed, with admin and reason.

import * as api from './api.js';
import { $, confirmAction, el, errorText, fillTable, left, localTime, notify, show } from './dom.js';

export function mount() {
  for (const id of ['ovr-kind', 'ovr-effect', 'ovr-expiry-mode']) $(id).addEventListener('change', adjustForm);
  adjustForm();
  $('ovr-form').addEventListener('submit', (e) => {
    e.preventDefault();
    add();
  });
  $('ovr-all').addEventListener('change', load);
}

export function enter() {
  load();
}

export function leave() {}

function adjustForm() {
  const kind = $('ovr-kind').value;
  const grant = kind === 'grant';
  show($('ovr-target-label'), kind !== 'emergency');
  $('ovr-target').placeholder = kind === 'allow_ip' ? '10.0.0.0/8 or 2001:db8::1' : 'sk-… (the raw API key)';
  show($('ovr-effect-label'), grant);
  show($('ovr-multiplier-label'), grant && $('ovr-effect').value === 'multiplier');
  const at = $('ovr-expiry-mode').value === 'at';
  show($('ovr-ttl-label'), !at);
  show($('ovr-at-label'), at);
}

// The request body of the form, or an error text.
function formBody() {
  const kind = $('ovr-kind').value;
  const body = { kind };
  const lines = [];
  if (kind !== 'emergency') {
    const target = $('ovr-target').value.trim();
    if (!target) return { error: kind === 'allow_ip' ? 'Give the address or CIDR to allow.' : 'Give the API key this override is for.' };
    body.target = target;
  }
  if (kind === 'grant') {
    if ($('ovr-effect').value === 'unlimited') {
      body.unlimited = true;
      lines.push('Effect: unlimited (no rule limits this key).');
    } else {
      const m = Number($('ovr-multiplier').value);
      if (!(m > 0 && m <= 1000)) return { error: 'The multiplier must be a number above 0 and at most 1000.' };
      body.multiplier = m;
      lines.push(`Effect: every limit and burst of this key multiplied by ${m}.`);
    }
  }
  if ($('ovr-expiry-mode').value === 'at') {
    const at = $('ovr-at').value;
    const ms = at ? new Date(at).getTime() : NaN;
    if (!Number.isFinite(ms)) return { error: 'Choose when the override expires.' };
    body.expires_at = new Date(ms).toISOString();
    lines.push(`Expires at ${localTime(ms)} (your local time).`);
  } else {
    const ttl = $('ovr-ttl').value.trim();
    if (!ttl) return { error: 'Give a duration such as 90s, 10m, 2h or 7d.' };
    body.ttl = ttl;
    lines.push(`Expires after ${ttl}.`);
  }
  const what = {
    grant: `Grant for key ${body.target}`,
    allow_key: `Key ${body.target} is not limited by any rule`,
    allow_ip: `Requests from ${body.target} are not limited by any rule`,
    emergency: 'EMERGENCY: no request is limited, on any proxy',
  }[kind];
  return { body, lines: [what, ...lines, 'Every proxy applies it within one poll interval.'] };
}

async function add() {
  const f = formBody();
  if (f.error) {
    notify(f.error);
    return;
  }
  const done = await confirmAction({
    title: 'Add this override?',
    lines: f.lines,
    confirmLabel: 'Add override',
    danger: f.body.kind === 'emergency',
    run: (who) => api.admin('POST', '/v1/overrides', { ...f.body, ...who }),
  });
  if (!done) return;
  notify(`Added ${done.result.id} (${done.result.kind}), expires ${localTime(done.result.until_ms)}.`, 'ok');
  $('ovr-target').value = '';
  load();
}

async function remove(o) {
  const done = await confirmAction({
    title: `Remove ${o.id}?`,
    lines: [`${o.kind}${o.target ? ' ' + o.target : ''}, added by ${o.admin}: ${o.reason}`, 'Proxies stop applying it within one poll interval.'],
    confirmLabel: 'Remove override',
    danger: true,
    run: (who) => api.admin('DELETE', `/v1/overrides/${encodeURIComponent(o.id)}${api.query(who)}`),
  });
  if (!done) return;
  notify(`Removed ${o.id}.`, 'ok');
  load();
}

async function load() {
  let v;
  try {
    v = await api.admin('GET', `/v1/overrides${$('ovr-all').checked ? '?all=1' : ''}`);
  } catch (err) {
    if (err.status !== 401) notify(errorText('Could not list the overrides', err));
    return;
  }
  const now = api.storeNow();
  const list = v.overrides;
  fillTable($('ovr-list'), list.map((o) => ({
    class: o.active ? '' : 'expired',
    cells: [
      { node: el('span', { class: 'mono', text: o.id }) },
      o.kind,
      o.target === null ? { text: 'everyone' } : { node: el('span', { class: 'mono', text: o.target }) },
      o.kind === 'grant' ? (o.unlimited ? 'unlimited' : `×${o.multiplier}`) : '–',
      o.active ? { node: el('span', { class: 'countdown', data: { until: String(o.until_ms) }, text: left(o.until_ms - now) }) } : 'expired',
      localTime(o.until_ms),
      o.admin,
      o.reason,
      o.active ? { node: el('button', { type: 'button', class: 'danger', text: 'Remove…', 'aria-label': `Remove ${o.id}`, on: { click: () => remove(o) } }) } : '',
    ],
  })));
  show($('ovr-empty'), list.length === 0);
}
