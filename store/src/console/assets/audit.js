// The audit log: filters (admin, action, key hash, time range) and paging, newest first.
// GET /v1/audit pages by time (`until`, inclusive, in ms): the next page starts at the last
// entry's millisecond and skips the entries already shown, so none is lost or repeated.

import * as api from './api.js';
import { $, el, errorText, fillTable, HASH_RE, localTime, notify, show } from './dom.js';

let pages = []; // the `until` cursor and skipped ids of each page shown: [{until, skip}]
let filters = {};
let last = null; // entries of the page on display

export function mount() {
  $('audit-form').addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });
  $('audit-clear').addEventListener('click', () => {
    for (const id of ['audit-admin', 'audit-action', 'audit-key', 'audit-since', 'audit-until']) $(id).value = '';
    apply();
  });
  $('audit-older').addEventListener('click', () => {
    if (!last || !last.length) return;
    const boundary = last[last.length - 1].at_ms;
    const prev = pages[pages.length - 1];
    const carried = prev && prev.until === boundary ? prev.skip : [];
    const skip = [...new Set([...carried, ...last.filter((e) => e.at_ms === boundary).map((e) => e.id)])];
    pages.push({ until: boundary, skip });
    load();
  });
  $('audit-newer').addEventListener('click', () => {
    if (pages.length > 1) pages.pop();
    load();
  });
}

export function enter() {
  apply();
}

export function leave() {}

function ms(id) {
  const v = $(id).value;
  return v ? new Date(v).getTime() : undefined;
}

function apply() {
  const key = $('audit-key').value.trim();
  if (key && !HASH_RE.test(key)) {
    notify('The key filter takes a key hash: 16 hexadecimal digits (look a raw key up on "Key lookup" first).');
    return;
  }
  filters = {
    admin: $('audit-admin').value.trim(),
    action: $('audit-action').value,
    key_hash: key.toLowerCase(),
    since: ms('audit-since'),
  };
  pages = [{ until: ms('audit-until'), skip: [] }];
  load();
}

async function load() {
  const size = Number($('audit-size').value);
  const page = pages[pages.length - 1];
  let v;
  try {
    v = await api.admin('GET', `/v1/audit${api.query({ ...filters, until: page.until, limit: Math.min(1000, size + page.skip.length) })}`);
  } catch (err) {
    if (err.status !== 401) notify(errorText('Could not read the audit log', err));
    return;
  }
  const skip = new Set(page.skip);
  const entries = v.entries.filter((e) => !skip.has(e.id)).slice(0, size);
  last = entries;
  fillTable($('audit-list'), entries.map((e) => [
    { node: el('time', { datetime: e.at, title: e.at, text: localTime(e.at_ms) }) },
    e.admin,
    e.action,
    e.key ? { node: HASH_RE.test(e.key) ? el('a', { href: `#/keys/${e.key}`, class: 'mono', text: e.key }) : el('span', { text: e.key }) } : '–',
    e.override ? { node: el('span', { class: 'mono', text: e.override }) } : '–',
    e.reason,
    { class: 'detail', node: details(e) },
  ]));
  show($('audit-empty'), entries.length === 0);
  $('audit-page').textContent = `Page ${pages.length}${entries.length ? `: ${localTime(entries[0].at_ms)} to ${localTime(entries[entries.length - 1].at_ms)}` : ''}`;
  $('audit-newer').disabled = pages.length <= 1;
  $('audit-older').disabled = entries.length < size;
}

function details(e) {
  const d = el('details', {}, el('summary', { text: 'before / after' }));
  d.append(el('pre', { text: `before: ${JSON.stringify(e.before, null, 2)}\nafter: ${JSON.stringify(e.after, null, 2)}` }));
  return d;
}
