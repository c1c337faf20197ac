// The operator dashboard: signs in with the admin token, polls /admin/api/stats every
// second with it as a bearer header, keeps five minutes of readings, and draws them. The
// Reports, Bans and Audit log pages (moderation.js) use the same token on the moderation
// API; the page shown is in the address's fragment (#reports, #bans, #audit).
//
// The token comes from the sign-in form or from `?token=` (moved out of the address bar at
// once, so it does not stay in history or get shared with a link), and lives in this tab's
// sessionStorage only: never in a cookie, never sent anywhere but the JSON endpoint.

import { LineChart, compact, difference, duration, quantile, rate } from './charts.js';
import { Moderation } from './moderation.js';

const TOKEN_KEY = 'tandem.admin.token';
const POLL_MS = 1000;
const WINDOW_MS = 5 * 60_000;
/** Latency quantiles are taken over this much history, so one slow match is a bump, not a cliff. */
const LATENCY_SPAN_MS = 10_000;
/** Readings older than this mean the page is not live. */
const STALE_MS = 5000;

const $ = (id) => document.getElementById(id);
/** The dashboard's pages, in tab order. */
const PAGES = ['live', 'reports', 'bans', 'audit'];

/** @type {{t: number, online: number, waiting: number, matches: number, skips: number, errors: Record<string, number>, bounds: number[], hist: number[], nodes: object[]}[]} */
let readings = [];
let token = null;
let timer = 0;
let lastOk = 0;

const charts = {
  users: new LineChart($('chart-users'), $('legend-users'), { windowMs: WINDOW_MS, integers: true }),
  rates: new LineChart($('chart-rates'), $('legend-rates'), { windowMs: WINDOW_MS }),
  latency: new LineChart($('chart-latency'), $('legend-latency'), { windowMs: WINDOW_MS, format: duration }),
  errors: new LineChart($('chart-errors'), $('legend-errors'), { windowMs: WINDOW_MS }),
};

// ---- the moderation API ----------------------------------------------------------------

/** An error answer of the API: its message, and the HTTP status (0: no answer). */
class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

/** A call to the moderation API with the token: the JSON answer, or an ApiError. */
async function api(path, { method = 'GET', body } = {}) {
  const asked = token;
  if (!asked) throw new ApiError('signed out', 0);
  const headers = { authorization: `Bearer ${asked}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError('the node could not be reached', 0);
  }
  // A refused token ends the session (a 404 here is an unknown report or ban).
  if (response.status === 401 && token === asked) refused(401);
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (!response.ok) {
    throw new ApiError(answer?.error ?? `HTTP ${response.status}`, response.status);
  }
  return answer;
}

/** An image of the moderation API (a flagged still, decrypted by the node) as a data URL. */
async function image(path) {
  const asked = token;
  if (!asked) throw new ApiError('signed out', 0);
  const response = await fetch(path, { headers: { authorization: `Bearer ${asked}` }, cache: 'no-store' });
  if (response.status === 401 && token === asked) refused(401);
  if (!response.ok) throw new ApiError(`HTTP ${response.status}`, response.status);
  const blob = await response.blob();
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new ApiError('the image could not be read', 0));
    reader.readAsDataURL(blob);
  });
}

const moderation = new Moderation(api, (page) => selectPage(page), image);

// ---- pages -----------------------------------------------------------------------------

/** The page named in the address (`#reports`), or the live figures. */
function pageInUrl() {
  const name = location.hash.slice(1);
  return PAGES.includes(name) ? name : 'live';
}

/** Shows one page, and names it in the address (replacing, not adding, a history entry). */
function selectPage(page, { focus = false } = {}) {
  for (const name of PAGES) {
    const selected = name === page;
    const tab = $(`tab-${name}`);
    tab.setAttribute('aria-selected', String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`panel-${name}`).hidden = !selected;
  }
  if (focus) $(`tab-${page}`).focus();
  const hash = page === 'live' ? '' : `#${page}`;
  if (location.hash !== hash) history.replaceState(null, '', `${location.pathname}${hash}`);
  if (!$('dashboard').hidden) moderation.show(page === 'live' ? null : page);
}

/** Arrow keys, Home and End move between the tabs (the ARIA tabs pattern). */
function onTabKey(event) {
  const at = PAGES.indexOf(event.target.id.replace(/^tab-/, ''));
  if (at < 0) return;
  let to = null;
  if (event.key === 'ArrowRight') to = (at + 1) % PAGES.length;
  else if (event.key === 'ArrowLeft') to = (at + PAGES.length - 1) % PAGES.length;
  else if (event.key === 'Home') to = 0;
  else if (event.key === 'End') to = PAGES.length - 1;
  if (to === null) return;
  event.preventDefault();
  selectPage(PAGES[to], { focus: true });
}

// ---- sign-in ---------------------------------------------------------------------------

function start() {
  const fromUrl = new URLSearchParams(location.search).get('token');
  if (fromUrl !== null) history.replaceState(null, '', `${location.pathname}${location.hash}`);
  const stored = sessionStorage.getItem(TOKEN_KEY);
  const candidate = fromUrl ?? stored;
  if (candidate) {
    signIn(candidate);
  } else {
    showLogin('');
  }
}

function signIn(candidate) {
  token = candidate;
  $('live').textContent = 'Signing in…';
  poll();
}

function signOut() {
  clearTimeout(timer);
  token = null;
  readings = [];
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin('');
}

/** The node refused the token (401) or runs without one (404): back to the form. */
function refused(status) {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  showLogin(status === 401
    ? 'That token is not right.'
    : 'The dashboard is off on this node (it runs without --admin-token).');
}

function showLogin(error) {
  moderation.stop();
  $('dashboard').hidden = true;
  $('sign-out').hidden = true;
  $('live').textContent = '';
  $('login').hidden = false;
  $('login-error').textContent = error;
  $('login-error').hidden = !error;
  $('token').focus();
}

function showDashboard() {
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('sign-out').hidden = false;
  moderation.start();
  selectPage(pageInUrl());
  render();
}

// ---- polling ---------------------------------------------------------------------------

/** Takes one reading and schedules the next; a refused token ends the polling. */
async function poll() {
  clearTimeout(timer);
  const asked = token;
  if (!asked) return;
  let response;
  try {
    response = await fetch('/admin/api/stats', {
      headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      cache: 'no-store',
    });
  } catch {
    if (token !== asked) return;
    markLive();
    timer = setTimeout(poll, POLL_MS * 2);
    return;
  }
  if (token !== asked) return; // signed out (or in again) meanwhile
  if (response.status === 401 || response.status === 404) {
    refused(response.status);
    return;
  }
  if (response.ok) {
    const snapshot = await response.json();
    if (token !== asked) return;
    record(snapshot);
    lastOk = Date.now();
    sessionStorage.setItem(TOKEN_KEY, token);
    if ($('dashboard').hidden) showDashboard();
    else render();
  }
  markLive();
  timer = setTimeout(poll, POLL_MS);
}

/** Sums the nodes of a snapshot into one reading and keeps the window. */
function record(snapshot) {
  const nodes = Array.isArray(snapshot.nodes) ? snapshot.nodes : [];
  const reading = {
    t: snapshot.at_ms,
    online: 0,
    waiting: 0,
    matches: 0,
    skips: 0,
    errors: {},
    bounds: nodes[0]?.match_wait?.bounds_secs ?? [],
    hist: [],
    nodes,
  };
  for (const node of nodes) {
    reading.online += node.online;
    reading.waiting += node.waiting;
    reading.matches += node.matches_total;
    reading.skips += node.skips_total;
    for (const [code, count] of Object.entries(node.errors_total ?? {})) {
      reading.errors[code] = (reading.errors[code] ?? 0) + count;
    }
    (node.match_wait?.counts ?? []).forEach((c, i) => {
      reading.hist[i] = (reading.hist[i] ?? 0) + c;
    });
  }
  readings.push(reading);
  const oldest = reading.t - WINDOW_MS - LATENCY_SPAN_MS;
  while (readings.length && readings[0].t < oldest) readings.shift();
}

function markLive() {
  const live = $('live');
  const age = Date.now() - lastOk;
  const fresh = lastOk && age < STALE_MS;
  live.className = `live ${fresh ? 'ok' : 'stale'}`;
  live.textContent = fresh ? 'Live' : lastOk ? `No data for ${Math.round(age / 1000)} s` : 'Connecting…';
}

// ---- drawing ---------------------------------------------------------------------------

/** Derived series: one value per reading (null where it cannot be known). */
function series() {
  const times = readings.map((r) => r.t);
  const perSecond = (key) => readings.map((r, i) => (i === 0 ? null
    : rate(r[key], readings[i - 1][key], (r.t - readings[i - 1].t) / 1000)));
  const latency = (q) => readings.map((r, i) => {
    const base = earliestWithin(i, LATENCY_SPAN_MS);
    if (base === i) return null;
    const seconds = quantile(r.bounds, difference(r.hist, readings[base].hist), q);
    return seconds;
  });
  const codes = new Set();
  readings.forEach((r, i) => {
    if (i === 0) return;
    for (const [code, count] of Object.entries(r.errors)) {
      if (count > (readings[i - 1].errors[code] ?? 0)) codes.add(code);
    }
  });
  const errorSeries = [...codes].sort().map((code) => ({
    label: code,
    values: readings.map((r, i) => (i === 0 ? null
      : rate(r.errors[code] ?? 0, readings[i - 1].errors[code] ?? 0, (r.t - readings[i - 1].t) / 1000))),
  }));
  const allErrors = readings.map((r, i) => (i === 0 ? null
    : rate(sum(r.errors), sum(readings[i - 1].errors), (r.t - readings[i - 1].t) / 1000)));
  return {
    times,
    online: readings.map((r) => r.online),
    waiting: readings.map((r) => r.waiting),
    matches: perSecond('matches'),
    skips: perSecond('skips'),
    p50: latency(0.5),
    p99: latency(0.99),
    errorSeries,
    allErrors,
  };
}

/** The index of the oldest reading at most `span` ms before reading `i`. */
function earliestWithin(i, span) {
  let j = i;
  while (j > 0 && readings[i].t - readings[j - 1].t <= span) j -= 1;
  return j;
}

function sum(counts) {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** The newest value: null (shown as "–") when the newest reading had none, e.g. no match
 * in the last 10 s, rather than an older figure that would look current. */
const lastOf = (values) => values[values.length - 1] ?? null;

function render() {
  if (!readings.length) return;
  const s = series();
  const now = readings[readings.length - 1].t;
  $('kpi-online').textContent = compact(lastOf(s.online));
  $('kpi-waiting').textContent = compact(lastOf(s.waiting));
  $('kpi-matches').textContent = compact(lastOf(s.matches));
  $('kpi-skips').textContent = compact(lastOf(s.skips));
  $('kpi-p50').textContent = duration(lastOf(s.p50));
  $('kpi-p99').textContent = duration(lastOf(s.p99));
  $('kpi-errors').textContent = compact(lastOf(s.allErrors));

  charts.users.draw(now, s.times, [
    { label: 'online', color: '#5b4cf0', values: s.online },
    { label: 'waiting', color: '#e8590c', values: s.waiting },
  ]);
  charts.rates.draw(now, s.times, [
    { label: 'matches/s', color: '#2b8a3e', values: s.matches },
    { label: 'skips/s', color: '#d6336c', values: s.skips },
  ]);
  charts.latency.draw(now, s.times, [
    { label: 'p50', color: '#1c7ed6', values: s.p50 },
    { label: 'p99', color: '#f59f00', values: s.p99 },
  ]);
  charts.errors.draw(now, s.times, s.errorSeries.length
    ? s.errorSeries
    : [{ label: 'all codes', color: '#868e96', values: s.allErrors }]);

  renderTables(readings[readings.length - 1]);
}

function renderTables(reading) {
  const cell = (text) => {
    const td = document.createElement('td');
    td.textContent = text;
    return td;
  };
  const row = (cells) => {
    const tr = document.createElement('tr');
    tr.append(...cells.map(cell));
    return tr;
  };
  const number = (n) => new Intl.NumberFormat().format(n);
  $('nodes').replaceChildren(...reading.nodes.map((n) => row([
    n.node, number(n.online), number(n.waiting), number(n.matches_total), number(n.skips_total),
    number(n.reports_total),
  ])));
  $('shards').replaceChildren(...reading.nodes.flatMap((n) => n.shards.map((shard, i) => row([
    n.node, String(i), number(shard.waiting), number(shard.matches_total), number(shard.stale_dropped_total),
  ]))));
  const errors = Object.entries(reading.errors).filter(([, c]) => c > 0).sort((a, b) => b[1] - a[1]);
  $('errors').replaceChildren(...errors.map(([code, count]) => row([code, number(count)])));
  $('errors-empty').hidden = errors.length > 0;
}

// ---- wiring ----------------------------------------------------------------------------

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const candidate = $('token').value.trim();
  if (!candidate) return;
  $('token').value = '';
  signIn(candidate);
});
$('sign-out').addEventListener('click', signOut);
for (const name of PAGES) $(`tab-${name}`).addEventListener('click', () => selectPage(name));
$('dashboard').querySelector('[role="tablist"]').addEventListener('keydown', onTabKey);
window.addEventListener('hashchange', () => selectPage(pageInUrl()));
setInterval(markLive, 1000);
start();
