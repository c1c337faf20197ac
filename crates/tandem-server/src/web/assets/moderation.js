// The dashboard's moderation pages: the report queue (with each report's evidence and a
// one-click Dismiss or Ban), the bans (issue, lift), and the audit log. They speak the
// moderation API (/admin/api/reports, /bans, /audit) through `api`, which admin.js gives
// with the operator's token.
//
// Everything users wrote (notes, chat lines) and everything the API returns is put in as
// text (textContent), never as HTML.

/** How often the open reports are counted, and a visible list refreshed. */
const REFRESH_MS = 10_000;

/** Ban lengths a moderator picks from, in seconds; `null` is permanent. */
export const DURATIONS = [
  ['1 hour', 3600],
  ['1 day', 86_400],
  ['7 days', 7 * 86_400],
  ['30 days', 30 * 86_400],
  ['Permanent', null],
];
const DEFAULT_DURATION = 7 * 86_400;

/** What the reasons a user picks from say, as the chat page words them. */
const REASONS = {
  nudity: 'Nudity or sexual content',
  minor: 'Appears to be under 18',
  harassment: 'Harassment, threats or bullying',
  hate: 'Hate speech',
  spam: 'Spam or advertising',
  scam: 'Scam or asking for money',
  other: 'Something else',
};

const $ = (id) => document.getElementById(id);

/**
 * An element with properties (`className`, `dateTime`, `hidden`…; `dataset` and `attrs`
 * set as data-* and attributes) and children: nodes, or strings put in as text.
 */
function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key === 'attrs') for (const [name, v] of Object.entries(value)) element.setAttribute(name, v);
    else element[key] = value;
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return element;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const clock = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** A `<time>` for Unix seconds: "5 min ago", the exact time in its title. */
function when(unixSecs) {
  const date = new Date(unixSecs * 1000);
  return h('time', { dateTime: date.toISOString(), title: dateTime.format(date) }, ago(date));
}

/** "just now", "5 min ago", "3 h ago", or the date. */
function ago(date) {
  const seconds = Math.round((Date.now() - date.getTime()) / 1000);
  if (seconds < 0) return dateTime.format(date);
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.max(1, Math.round(seconds / 60))} min ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h ago`;
  return dateTime.format(date);
}

/** When a ban ends: "permanent", or the date. */
function ends(until) {
  if (until === null || until === undefined) return 'permanent';
  const date = new Date(until * 1000);
  return h('time', { dateTime: date.toISOString() }, dateTime.format(date));
}

let regionNames = null;
try {
  regionNames = new Intl.DisplayNames(undefined, { type: 'region', fallback: 'code' });
} catch {
  regionNames = null;
}

function country(code) {
  if (!code || code === 'ZZ') return 'unknown';
  try {
    const name = regionNames?.of(code);
    return name && name !== code ? `${name} (${code})` : code;
  } catch {
    return code;
  }
}

function durationOptions(select, chosen = DEFAULT_DURATION) {
  select.replaceChildren(...DURATIONS.map(([label, seconds]) => h('option', {
    value: seconds === null ? 'permanent' : String(seconds),
    selected: seconds === chosen,
  }, label)));
}

function durationOf(select) {
  return select.value === 'permanent' ? null : Number(select.value);
}

function showError(element, text) {
  element.textContent = text;
  element.hidden = !text;
}

/**
 * The moderation pages. `api(path, {method, body})` resolves to the JSON answer or throws
 * an Error with the API's message (and its HTTP `status`); `selectPage(name)` shows a page.
 */
export class Moderation {
  constructor(api, selectPage, image) {
    this.api = api;
    this.image = image; // path → data URL of a flagged still
    this.selectPage = selectPage;
    this.visible = null; // 'reports', 'bans' or 'audit' when one of them is shown
    this.timer = 0;
    this.shown = { reports: '', bans: '', audit: '' }; // what each list last drew, as JSON
    this.busy = new Set(); // reports being resolved
    durationOptions($('ban-duration'));
    $('reports-status').addEventListener('change', () => this.loadReports(true));
    $('reports-refresh').addEventListener('click', () => this.loadReports(true));
    $('bans-refresh').addEventListener('click', () => this.loadBans(true));
    $('audit-refresh').addEventListener('click', () => this.loadAudit(true));
    $('ban-form').addEventListener('submit', (event) => this.issueBan(event));
    $('reports').addEventListener('click', (event) => this.onReportClick(event));
    $('bans').addEventListener('click', (event) => this.onBanClick(event));
  }

  /** Starts counting open reports (signed in). */
  start() {
    this.stop();
    this.refresh();
    this.timer = setInterval(() => this.refresh(), REFRESH_MS);
  }

  /** Stops (signed out) and forgets what was shown. */
  stop() {
    clearInterval(this.timer);
    this.timer = 0;
    this.shown = { reports: '', bans: '', audit: '' };
    for (const id of ['reports', 'bans', 'audit']) $(id).replaceChildren();
  }

  /** One of the pages came into view (`null`: none of them). */
  show(page) {
    this.visible = page;
    if (page === 'reports') this.loadReports(true);
    else if (page === 'bans') this.loadBans(true);
    else if (page === 'audit') this.loadAudit(true);
  }

  /** The periodic look: the open count, and the visible list if it changed. */
  refresh() {
    if (this.visible === 'reports') this.loadReports(false);
    else this.countOpen();
    if (this.visible === 'bans') this.loadBans(false);
    if (this.visible === 'audit') this.loadAudit(false);
  }

  async countOpen() {
    try {
      const open = await this.api('/admin/api/reports?status=open');
      this.setOpenCount(open.length);
    } catch {
      // The next look tries again; the list pages show errors.
    }
  }

  setOpenCount(count) {
    const badge = $('reports-count');
    badge.textContent = String(count);
    badge.hidden = count === 0;
    badge.title = `${count} open`;
  }

  // ---- reports -------------------------------------------------------------------------

  async loadReports(force) {
    const status = $('reports-status').value;
    let reports;
    try {
      reports = await this.api(`/admin/api/reports?status=${encodeURIComponent(status)}`);
    } catch (error) {
      showError($('reports-error'), `Could not load the reports: ${error.message}`);
      return;
    }
    showError($('reports-error'), '');
    if (status === 'open') this.setOpenCount(reports.length);
    else if (!force) this.countOpen();
    const drawn = JSON.stringify(reports);
    if (!force && drawn === this.shown.reports) return;
    this.shown.reports = drawn;
    this.renderReports(reports, status);
  }

  renderReports(reports, status) {
    const list = $('reports');
    // A redraw keeps what the moderator was typing or had picked.
    const kept = new Map();
    for (const input of list.querySelectorAll('[data-keep]')) kept.set(input.id, input.value);
    const focused = list.contains(document.activeElement) ? document.activeElement.id : '';
    list.replaceChildren(...reports.map((report) => this.reportCard(report)));
    for (const [id, value] of kept) {
      const input = document.getElementById(id);
      if (input) input.value = value;
    }
    if (focused) document.getElementById(focused)?.focus();
    const empty = $('reports-empty');
    empty.textContent = status === 'open' ? 'No open reports. Nothing to review.' : 'No reports here.';
    empty.hidden = reports.length > 0;
  }

  reportCard(report) {
    const id = report.id;
    const reason = REASONS[report.reason] ?? report.reason;
    const reported = report.reported ?? {};
    const head = h('header', { className: 'report-head' },
      h('h2', { className: `reason reason-${report.reason}` }, reason),
      h('span', { className: 'muted' },
        report.reporter_count === 1 ? '1 reporter' : `${report.reporter_count} reporters`),
      h('span', { className: 'muted' }, 'reported ', when(report.at)),
      report.status !== 'open' ? h('span', { className: `status status-${report.status}` }, report.status) : null);

    const facts = h('dl', { className: 'facts' },
      fact('Reported client', h('code', {}, reported.client ?? '?')),
      fact('Address', reported.ip
        ? [h('code', {}, reported.ip), ' ', prefill('ip', reported.ip, report, 'Ban address…')]
        : 'unknown'),
      fact('Device', reported.device
        ? [h('code', {}, reported.device), ' ', prefill('device', reported.device, report, 'Ban device…')]
        : 'none given'),
      fact('Country', country(reported.country)),
      fact('Chat', h('code', {}, report.chat)),
      fact('Automatic bans', report.auto_bans?.length
        ? report.auto_bans.map((ban, i) => [i ? ', ' : '', h('code', {}, ban)])
        : 'none'));

    const reporters = h('ul', { className: 'reporters' }, ...(report.reporters ?? []).map((r) => h('li', {},
      h('strong', {}, REASONS[r.reason] ?? r.reason), ' · ', when(r.at), ' · ',
      h('code', { title: 'reporter' }, shortId(r.client)),
      r.note ? h('q', { className: 'reporter-note' }, r.note) : null)));

    const evidence = report.evidence ?? [];
    const lines = evidence.length
      ? h('ol', { className: 'evidence', attrs: { 'aria-label': 'The last lines of the chat' } },
        ...evidence.map((line) => {
          const date = new Date(line.at_ms);
          const from = line.from === 'reported' ? 'reported' : 'reporter';
          return h('li', { className: `evidence-line from-${from}` },
            h('time', { dateTime: date.toISOString(), title: dateTime.format(date) }, clock.format(date)),
            h('span', { className: 'who' }, from === 'reported' ? 'Reported:' : 'Reporter:'),
            h('span', { className: 'text' }, String(line.text ?? '')));
        }))
      : h('p', { className: 'muted' }, 'No lines were written in this chat.');

    const card = h('article', {
      className: `card report${report.reason === 'minor' ? ' urgent' : ''}`,
      dataset: { report: id },
      attrs: { 'aria-label': `Report: ${reason}` },
    },
    head,
    report.note ? h('p', { className: 'report-note' }, h('span', { className: 'muted' }, 'Note: '), h('q', {}, report.note)) : null,
    facts,
    h('details', { className: 'reporters-box', open: report.reporter_count > 1 },
      h('summary', {}, 'Who reported'), reporters),
    h('h3', {}, 'Last lines of the chat'),
    lines);

    if ((report.reporters ?? []).some((r) => r.client === 'classifier.snapshot')) {
      card.append(h('div', { className: 'stills' },
        h('button', { type: 'button', className: 'btn report-stills', dataset: { action: 'stills' } },
          'Show the flagged video stills')));
    }

    if (report.status === 'open') {
      const noteId = `note-${id}`;
      const durationId = `duration-${id}`;
      const duration = h('select', { id: durationId, className: 'duration report-duration', dataset: { keep: '' } });
      durationOptions(duration);
      card.append(h('div', { className: 'report-actions' },
        h('div', { className: 'field grow' },
          h('label', { htmlFor: noteId }, 'Moderator note ', h('span', { className: 'muted' }, '(optional)')),
          h('input', { id: noteId, type: 'text', maxLength: 500, autocomplete: 'off', className: 'report-mod-note', dataset: { keep: '' } })),
        h('button', { type: 'button', className: 'btn report-dismiss', dataset: { action: 'dismiss' } }, 'Dismiss'),
        h('div', { className: 'field' }, h('label', { htmlFor: durationId }, 'Ban for'), duration),
        h('button', { type: 'button', className: 'btn danger report-ban', dataset: { action: 'ban' } }, 'Ban')));
      card.append(h('p', { className: 'form-error report-error', attrs: { role: 'alert' }, hidden: true }));
    } else if (report.resolution) {
      const r = report.resolution;
      card.append(h('p', { className: 'resolution' },
        r.action === 'banned' ? 'Banned' : 'Dismissed', ' by ', h('strong', {}, r.by), ' ', when(r.at),
        r.ban ? [' · ban ', h('code', {}, r.ban)] : null,
        r.note ? [' · ', h('q', {}, r.note)] : null));
    }
    return card;
  }

  /** Shows a report's flagged stills (each opening is written to the audit log). */
  async showStills(id, box) {
    box.replaceChildren(h('p', { className: 'muted' }, 'Decrypting…'));
    try {
      const stills = await this.api(`/admin/api/reports/${encodeURIComponent(id)}/snapshots`);
      if (!stills.length) {
        box.replaceChildren(h('p', { className: 'muted' }, 'No stills are kept for this report (past their retention).'));
        return;
      }
      const figures = [];
      for (const still of stills) {
        const src = await this.image(still.url);
        const classes = (still.classes ?? []).map((c) => `${c.class} ${Number(c.score).toFixed(2)}`).join(', ');
        figures.push(h('figure', { className: 'still' },
          h('img', { src, alt: `Flagged video still: ${classes}`, className: 'still-image' }),
          h('figcaption', {}, when(still.at), ' · ', classes)));
      }
      box.replaceChildren(...figures);
    } catch (failure) {
      box.replaceChildren(h('p', { className: 'form-error', attrs: { role: 'alert' } },
        `Could not show the stills: ${failure.message}`));
    }
  }

  async onReportClick(event) {
    const button = event.target.closest('button');
    if (!button) return;
    if (button.dataset.prefill) {
      this.prefillBan(button.dataset.prefill, button.dataset.value, button.dataset.reason);
      return;
    }
    const action = button.dataset.action;
    const card = button.closest('[data-report]');
    if (!card || !action) return;
    const id = card.dataset.report;
    if (action === 'stills') {
      await this.showStills(id, button.closest('.stills'));
      return;
    }
    if (this.busy.has(id)) return;
    const note = card.querySelector('.report-mod-note').value.trim() || null;
    const body = action === 'ban'
      ? { action: 'ban', duration_s: durationOf(card.querySelector('.report-duration')), note }
      : { action: 'dismiss', duration_s: null, note };
    const error = card.querySelector('.report-error');
    this.busy.add(id);
    for (const b of card.querySelectorAll('.report-actions button')) b.disabled = true;
    try {
      await this.api(`/admin/api/reports/${encodeURIComponent(id)}/resolve`, { method: 'POST', body });
      $('reports-notice').textContent = action === 'ban'
        ? `Report ${id}: the reported client is banned.`
        : `Report ${id} dismissed.`;
    } catch (failure) {
      if (failure.status === 409) {
        $('reports-notice').textContent = `Report ${id} was already resolved by someone else.`;
      } else {
        showError(error, `Could not ${action} it: ${failure.message}`);
        for (const b of card.querySelectorAll('.report-actions button')) b.disabled = false;
        return;
      }
    } finally {
      this.busy.delete(id);
    }
    this.shown.bans = '';
    this.shown.audit = '';
    await this.loadReports(true);
  }

  /** Opens the Bans page with its form filled in from a report. */
  prefillBan(kind, value, reason) {
    $('ban-kind').value = kind;
    $('ban-value').value = value;
    $('ban-reason').value = reason;
    showError($('ban-error'), '');
    this.selectPage('bans');
    $('ban-reason').focus();
  }

  // ---- bans ----------------------------------------------------------------------------

  async loadBans(force) {
    let bans;
    try {
      bans = await this.api('/admin/api/bans');
    } catch (error) {
      showError($('bans-error'), `Could not load the bans: ${error.message}`);
      return;
    }
    showError($('bans-error'), '');
    const drawn = JSON.stringify(bans);
    if (!force && drawn === this.shown.bans) return;
    this.shown.bans = drawn;
    // Active bans first, each group newest first (as the API sends them).
    const sorted = [...bans.filter((b) => b.active), ...bans.filter((b) => !b.active)];
    $('bans').replaceChildren(...sorted.map((ban) => banRow(ban)));
    $('bans-empty').hidden = bans.length > 0;
  }

  async issueBan(event) {
    event.preventDefault();
    const kind = $('ban-kind').value;
    const value = $('ban-value').value.trim();
    const reason = $('ban-reason').value.trim();
    if (!value || !reason) {
      showError($('ban-error'), !value ? 'Say who to ban.' : 'Give a reason: the banned user sees it.');
      (!value ? $('ban-value') : $('ban-reason')).focus();
      return;
    }
    const submit = $('ban-submit');
    submit.disabled = true;
    try {
      const ban = await this.api('/admin/api/bans', {
        method: 'POST',
        body: { subject: { kind, value }, duration_s: durationOf($('ban-duration')), reason },
      });
      showError($('ban-error'), '');
      $('ban-form').reset();
      durationOptions($('ban-duration'));
      $('bans-notice').textContent = `Banned ${ban.subject.kind} ${ban.subject.value}.`;
      this.shown.audit = '';
      await this.loadBans(true);
    } catch (error) {
      showError($('ban-error'), `Could not ban: ${error.message}`);
    } finally {
      submit.disabled = false;
    }
  }

  async onBanClick(event) {
    const button = event.target.closest('button[data-lift]');
    if (!button) return;
    button.disabled = true;
    const id = button.dataset.lift;
    try {
      const ban = await this.api(`/admin/api/bans/${encodeURIComponent(id)}`, { method: 'DELETE' });
      $('bans-notice').textContent = `Lifted the ban on ${ban.subject.kind} ${ban.subject.value}.`;
    } catch (error) {
      showError($('bans-error'), `Could not lift it: ${error.message}`);
      button.disabled = false;
      return;
    }
    this.shown.audit = '';
    await this.loadBans(true);
  }

  // ---- audit ---------------------------------------------------------------------------

  async loadAudit(force) {
    let entries;
    try {
      entries = await this.api('/admin/api/audit');
    } catch (error) {
      showError($('audit-error'), `Could not load the audit log: ${error.message}`);
      return;
    }
    showError($('audit-error'), '');
    const drawn = JSON.stringify(entries);
    if (!force && drawn === this.shown.audit) return;
    this.shown.audit = drawn;
    $('audit').replaceChildren(...entries.map((entry) => h('tr', {},
      h('td', {}, when(entry.at)),
      h('td', {}, entry.who),
      h('td', {}, h('span', { className: `action action-${entry.action}` }, entry.action)),
      h('td', {}, h('code', {}, entry.target)),
      h('td', { className: 'detail' }, entry.detail ?? ''))));
    $('audit-empty').hidden = entries.length > 0;
  }
}

function fact(term, ...definition) {
  return h('div', {}, h('dt', {}, term), h('dd', {}, ...definition));
}

/** A button that fills the ban form for this subject. */
function prefill(kind, value, report, label) {
  return h('button', {
    type: 'button',
    className: 'btn small ghost',
    dataset: { prefill: kind, value, reason: `report ${report.id}: ${report.reason}` },
  }, label);
}

function shortId(id) {
  return typeof id === 'string' && id.length > 12 ? `${id.slice(0, 12)}…` : String(id ?? '?');
}

function banRow(ban) {
  const status = ban.active
    ? h('span', { className: 'status status-active' }, 'Active')
    : ban.lifted
      ? h('span', { className: 'status' }, 'Lifted')
      : h('span', { className: 'status' }, 'Ended');
  const issuer = ban.issued_by?.kind === 'rule'
    ? ['rule ', h('code', {}, ban.issued_by.rule), ' on report ', h('code', {}, ban.issued_by.report),
      ban.confirmed ? ' (confirmed)' : ' (not yet confirmed)']
    : [ban.issued_by?.name ?? '?'];
  return h('tr', { className: ban.active ? 'active' : 'inactive', dataset: { ban: ban.id } },
    h('td', {}, status),
    h('td', {}, `${ban.subject.kind} `, h('code', {}, ban.subject.value)),
    h('td', { className: 'detail' }, ban.reason),
    h('td', {}, ...issuer),
    h('td', {}, when(ban.at)),
    h('td', {}, ban.lifted ? ['lifted by ', ban.lifted.by, ' ', when(ban.lifted.at)] : ends(ban.until)),
    h('td', {}, ban.active
      ? h('button', { type: 'button', className: 'btn small', dataset: { lift: ban.id } }, 'Lift')
      : ''));
}
