// The console's shell: login, navigation (#/page/argument), the admin name, logout.

import * as api from './api.js';
import { $, clearNotice, errorText, notify } from './dom.js';
import * as overview from './overview.js';
import * as keys from './keys.js';
import * as overrides from './overrides.js';
import * as limits from './limits.js';
import * as audit from './audit.js';

const PAGES = { overview, keys, overrides, limits, audit };
let current = null;
let loggedIn = false;

function showOnly(id) {
  for (const s of document.querySelectorAll('main > section.page')) s.hidden = s.id !== id;
}

function route() {
  if (!loggedIn) return;
  const [name, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
  const page = PAGES[name] ? name : 'overview';
  if (current && current !== PAGES[page]) {
    current.leave?.();
    // A success message belongs to the page it was about; errors stay until dismissed.
    if ($('notice').classList.contains('ok-notice')) clearNotice();
  }
  current = PAGES[page];
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  showOnly('page-' + page);
  document.title = `${document.querySelector('#nav a[aria-current]')?.textContent || 'Overview'} · Tollgate console`;
  current.enter(rest.map(decodeURIComponent).join('/'));
}

function showLogin(message) {
  loggedIn = false;
  current?.leave?.();
  current = null;
  $('nav').hidden = true;
  $('who').hidden = true;
  showOnly('page-login');
  const err = $('login-error');
  err.hidden = !message;
  err.textContent = message || '';
  document.title = 'Log in · Tollgate console';
  $('login-token').focus();
}

async function enter() {
  await api.session();
  loggedIn = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  $('admin-name').value = localStorage.getItem('tollgate.admin') || '';
  route();
}

async function start() {
  for (const p of Object.values(PAGES)) p.mount();
  $('notice-close').addEventListener('click', clearNotice);
  $('admin-name').addEventListener('change', (e) => localStorage.setItem('tollgate.admin', e.target.value.trim()));
  $('login-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const token = $('login-token').value.trim();
    const button = $('login-submit');
    button.disabled = true;
    try {
      await api.login(token);
      $('login-token').value = '';
      clearNotice();
      await enter();
    } catch (err) {
      const msg = err.status === 401 ? 'That is not the admin token of this store. Check --admin-token / TOLLGATE_ADMIN_TOKEN.' : errorText('Could not log in', err);
      $('login-error').textContent = msg;
      $('login-error').hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  $('logout').addEventListener('click', async () => {
    try { await api.logout(); } catch (err) { notify(errorText('Could not log out', err)); return; }
    showLogin('You are logged out.');
  });
  window.addEventListener('tollgate:logged-out', (e) => {
    if (loggedIn) showLogin(`Please log in again: ${e.detail}`);
  });
  window.addEventListener('hashchange', route);
  try {
    await enter();
  } catch (err) {
    if (err.status === 401) showLogin('');
    else { showLogin(''); notify(errorText('Could not load the console', err)); }
  }
}

start();
