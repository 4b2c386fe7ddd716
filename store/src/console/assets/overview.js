// Overview: decisions per second by rule and by proxy (from two polls of the fleet's
// totals), top denied keys, store and Redis health, failure-mode use.

import * as api from './api.js';
import { $, clear, el, errorText, fillTable, HASH_RE, left, localTime, notify, num, percent, rate, show } from './dom.js';

const POLL_MS = 2000;
let timer = null;
let previous = null; // {at, rules: Map, proxies: Map, failed}

export function mount() {}

export function enter() {
  previous = null;
  poll();
}

export function leave() {
  clearTimeout(timer);
  timer = null;
}

async function poll() {
  clearTimeout(timer);
  try {
    const v = await api.overview();
    render(v);
  } catch (err) {
    if (err.status !== 401) notify(errorText('Could not load the overview', err));
  }
  if (!$('page-overview').hidden) timer = setTimeout(poll, POLL_MS);
}

function dl(target, pairs) {
  const list = clear($(target));
  for (const [k, v, cls] of pairs) {
    list.append(el('dt', { text: k }), el('dd', { text: v, class: cls }));
  }
}

function perSecond(now, before, dt) {
  if (before === undefined || before === null || dt <= 0) return null;
  return Math.max(0, now - before) / dt;
}

function render(v) {
  const at = v.now_ms;
  const dt = previous ? (at - previous.at) / 1000 : 0;
  $('ov-updated').textContent = `Updated ${localTime(at)}; refreshes every ${POLL_MS / 1000} s.`;

  const h = v.health;
  dl('ov-store-list', [
    ['Status', 'answering', 'ok'],
    ['Version', h.version],
    ['Up for', left(h.uptime_s * 1000)],
  ]);
  const s = v.store;
  dl('ov-redis-list', [
    ['Status', h.redis.ok ? `answering (PING ${h.redis.ping_ms} ms)` : `DOWN: ${h.redis.error}`, h.redis.ok ? 'ok' : 'bad'],
    ['Mean latency', `${s.redis_mean_ms} ms over ${num(s.redis_calls)} calls`],
    ['Errors', num(s.redis_errors), s.redis_errors ? 'warn' : ''],
    ['Timeouts', num(s.redis_timeouts), s.redis_timeouts ? 'warn' : ''],
  ]);
  const failed = Object.values(s.proxy_calls).reduce((n, c) => n + c.unavailable + c.refused, 0);
  const failedRate = perSecond(failed, previous ? previous.failed : null, dt);
  const failurePairs = [['Failed calls', `${num(failed)} (${rate(failedRate)}/s)`, failed ? 'warn' : 'ok']];
  for (const [endpoint, c] of Object.entries(s.proxy_calls)) {
    if (c.ok + c.unavailable + c.refused === 0) continue;
    failurePairs.push([endpoint, `${num(c.ok)} ok, ${num(c.unavailable)} unavailable (503), ${num(c.refused)} refused`]);
  }
  dl('ov-failure-list', failurePairs);

  const overrides = Array.isArray(v.overrides) ? v.overrides : [];
  const emergency = overrides.filter((o) => o.kind === 'emergency');
  const banner = $('ov-emergency');
  if (emergency.length) {
    const until = Math.max(...emergency.map((o) => o.until_ms));
    banner.textContent = `Emergency override active: nothing is limited on any proxy, for ${left(until - api.storeNow())} more (${emergency.map((o) => `${o.admin}: ${o.reason}`).join('; ')}).`;
  }
  show(banner, emergency.length > 0);

  const stats = v.stats;
  const statsError = $('ov-stats-error');
  show(statsError, !stats);
  if (!stats) {
    statsError.textContent = `Statistics are unavailable: ${v.stats_error || 'Redis did not answer'}.`;
    return;
  }
  $('ov-since').textContent = stats.since ? `(since ${localTime(Date.parse(stats.since))})` : '(no decisions yet)';

  const rules = new Map(stats.rules.map((r) => [r.rule, r]));
  fillTable($('ov-rules'), stats.rules.map((r) => {
    const p = previous && previous.rules.get(r.rule);
    return [
      r.rule,
      { text: rate(perSecond(r.allowed, p && p.allowed, dt)), class: 'num' },
      { text: rate(perSecond(r.denied, p && p.denied, dt)), class: 'num' },
      { text: rate(perSecond(r.lease_units_granted, p && p.lease_units_granted, dt)), class: 'num' },
      { text: num(r.allowed), class: 'num' },
      { text: num(r.denied), class: 'num' },
      { text: percent(r.hit_rate), class: 'num' },
      { text: `${num(r.leases_granted)} (${num(r.leases_denied)} denied)`, class: 'num' },
    ];
  }), 'No decisions yet: rules with scope "global" show up here once proxies call the store.');

  const proxyList = stats.proxies || [];
  const proxies = new Map(proxyList.map((p) => [p.proxy, p]));
  const decisions = (p) => (p ? p.allowed + p.denied + p.leases_granted + p.leases_denied : undefined);
  fillTable($('ov-proxies'), proxyList.map((p) => [
    { node: el('span', { class: 'mono', text: p.proxy }) },
    { text: rate(perSecond(decisions(p), previous && decisions(previous.proxies.get(p.proxy)), dt)), class: 'num' },
    { text: num(p.allowed), class: 'num' },
    { text: num(p.denied), class: 'num' },
    { text: `${num(p.leases_granted)} (${num(p.leases_denied)} denied)`, class: 'num' },
    { text: num(p.lease_units_granted), class: 'num' },
  ]), 'No proxy has called the store yet.');

  fillTable($('ov-top-keys'), stats.top_keys.map((k) => [
    { node: HASH_RE.test(k.key) ? el('a', { href: `#/keys/${k.key.toLowerCase()}`, class: 'mono', text: k.key }) : el('span', { class: 'mono', text: k.key }) },
    { text: num(k.denied), class: 'num' },
  ]), 'No denials.');
  fillTable($('ov-top-ips'), stats.top_ips.map((k) => [{ node: el('span', { class: 'mono', text: k.ip }) }, { text: num(k.denied), class: 'num' }]), 'No denials with a client IP.');
  fillTable($('ov-top-endpoints'), stats.top_endpoints.map((k) => [k.endpoint, { text: num(k.denied), class: 'num' }]), 'No denials with an endpoint.');

  previous = { at, rules, proxies, failed };
}
