// Privacy, as the chat page offers it: saving a chat to a private link (`save_log`, over
// the WebSocket), and the "Your data" panel on the landing view (a download of what the
// node keeps about this browser, and erasing it, over `/api/privacy/…`).
//
// A saved chat is the only chat the node keeps on purpose, so the page asks for it only
// when the user presses "Save this chat", shows the link and its delete link at once, and
// keeps that notice until it is dismissed: the delete link is shown nowhere else.

import { listFormat, plural, t } from './i18n.js';

/** A chat can be saved this long after it ended (the node's limit). */
const SAVE_WINDOW_MS = 5 * 60_000;
/** A save not answered in this long is taken as lost. */
const SAVE_ANSWER_MS = 20_000;
/** "Copied" reads this long before the button reads "Copy link" again. */
const COPIED_MS = 2000;

/**
 * The "Save this chat" bar: the button while a chat can be saved (the current one, or the
 * one that ended last, for five minutes), and the notice with the link once it is saved.
 *
 * The page tells it about chats (`chatStarted`, `chatEnded`) and the connection
 * (`withdraw` when the node forgets this connection's chats); server messages go through
 * `handle`, which takes the answers to a save and leaves everything else.
 */
export class SaveChat {
  /**
   * @param {object} options
   * @param {(message: object) => boolean} options.send  sends a client message; false when offline
   * @param {() => void} options.onSettled  a save was answered or given up (the page may close
   *                                        a connection it kept only for it)
   * @param {() => HTMLElement} options.fallbackFocus  where focus goes when the button it was on
   *                                                   goes away
   */
  constructor({ send, onSettled, fallbackFocus }) {
    const $ = (id) => document.getElementById(id);
    this.ui = {
      bar: $('save-bar'),
      button: $('save-log'),
      status: $('save-status'),
      saved: $('saved-log'),
      link: $('saved-log-link'),
      copy: $('copy-log-link'),
      remove: $('saved-log-delete'),
      close: $('save-status-close'),
    };
    this.send = send;
    this.onSettled = onSettled;
    this.fallbackFocus = fallbackFocus;
    this.current = null; // the chat under way, while chatting
    this.previous = null; // {chat, timer}: the chat that ended last, while it may be saved
    this.pending = null; // {chat, timer}: a save sent and not answered yet
    this.saved = null; // the last `log_saved`
    this.off = false; // banned: nothing is offered any more
    this.copiedTimer = 0;
    this.ui.button.addEventListener('click', () => this.save());
    this.ui.copy.addEventListener('click', () => this.copy());
    this.ui.close.addEventListener('click', () => this.dismiss());
  }

  /** The chat the button saves: the current one, else the one that ended last. */
  get target() {
    return this.current ?? this.previous?.chat ?? null;
  }

  /** Whether a save is waiting for its answer (the connection is needed until then). */
  get busy() {
    return this.pending !== null;
  }

  chatStarted(chat) {
    this.forgetPrevious();
    this.current = chat;
    this.render();
  }

  /** The chat is over: it can still be saved for five minutes, on this connection. */
  chatEnded(chat) {
    if (this.current === chat) this.current = null;
    this.forgetPrevious();
    this.previous = {
      chat,
      timer: setTimeout(() => {
        this.previous = null;
        this.render();
      }, SAVE_WINDOW_MS),
    };
    this.render();
  }

  /** The node forgot this connection's chats (it dropped or was closed): nothing to save. */
  withdraw() {
    this.current = null;
    this.forgetPrevious();
    if (this.pending !== null) {
      this.settle();
      this.showStatus(t('save.dropped'), true);
    }
    this.render();
  }

  /** Banned: the bar goes away for good. */
  disable() {
    this.off = true;
    this.current = null;
    this.forgetPrevious();
    if (this.pending !== null) clearTimeout(this.pending.timer);
    this.pending = null;
    this.render();
  }

  save() {
    const chat = this.target;
    if (chat === null || this.pending !== null || this.off) return;
    if (!this.send({ type: 'save_log', chat })) {
      this.showStatus(t('save.offline'), true);
      return;
    }
    this.pending = { chat, timer: setTimeout(() => this.onLost(), SAVE_ANSWER_MS) };
    this.showStatus(t('save.saving'), false);
  }

  /** Takes `log_saved` and the errors that answer a pending save; true if it took it. */
  handle(message) {
    if (message.type === 'log_saved') {
      this.onSaved(message);
      return true;
    }
    if (message.type === 'error' && this.isSaveError(message)) {
      this.onError(message);
      return true;
    }
    return false;
  }

  /** Whether an `error` answers the pending save rather than anything else. */
  isSaveError(message) {
    const pending = this.pending;
    if (pending === null) return false;
    const text = typeof message.message === 'string' ? message.message : '';
    switch (message.code) {
      case 'unavailable':
      case 'unsupported':
      case 'not_in_chat':
        return true;
      case 'rate_limited':
        return /sav|log/i.test(text);
      case 'stale_chat':
        return text.includes(pending.chat);
      default:
        return false;
    }
  }

  onSaved(message) {
    const hadFocus = document.activeElement === this.ui.button;
    this.settle();
    if (typeof message.url !== 'string' || typeof message.delete_url !== 'string') {
      this.showStatus(t('save.unconfirmed'), true);
      return;
    }
    this.saved = message;
    // The node answers paths; the notice shows (and copies) the whole address.
    const url = new URL(message.url, location.href).href;
    this.ui.link.href = url;
    this.ui.link.textContent = url;
    this.ui.remove.href = new URL(message.delete_url, location.href).href;
    this.ui.copy.textContent = t('save.copy');
    this.ui.saved.hidden = false;
    this.showStatus(t('save.saved'), false);
    if (hadFocus) this.ui.link.focus();
  }

  onError(message) {
    this.settle();
    let text;
    switch (message.code) {
      case 'rate_limited':
        text = t('save.rate_limited');
        break;
      case 'unavailable':
        text = t('save.unavailable');
        break;
      case 'unsupported':
        text = t('save.unsupported');
        break;
      case 'stale_chat':
      case 'not_in_chat':
        this.forgetPrevious();
        text = t('save.too_late');
        break;
      default:
        text = t('save.failed', { why: message.message || t('common.something_wrong') });
    }
    this.showStatus(text, true);
  }

  onLost() {
    this.pending = null;
    this.showStatus(t('save.unconfirmed'), true);
    this.onSettled();
  }

  settle() {
    if (this.pending === null) return;
    clearTimeout(this.pending.timer);
    this.pending = null;
    this.onSettled();
  }

  /** Erasing this browser's data deleted the saved chats: the link no longer works. */
  forgetSaved() {
    this.ui.saved.hidden = true;
    this.ui.link.removeAttribute('href');
    this.ui.remove.removeAttribute('href');
    if (this.ui.status.textContent && !this.ui.status.classList.contains('error')) {
      this.ui.status.textContent = '';
    }
    this.render();
  }

  async copy() {
    const url = this.ui.link.href;
    if (!url) return;
    try {
      await navigator.clipboard.writeText(url);
      this.ui.copy.textContent = t('save.copied');
    } catch {
      // No clipboard (an insecure page, a refusal): select the link for the user to copy.
      const range = document.createRange();
      range.selectNodeContents(this.ui.link);
      const selection = getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      this.ui.copy.textContent = t('save.selected');
    }
    clearTimeout(this.copiedTimer);
    this.copiedTimer = setTimeout(() => { this.ui.copy.textContent = t('save.copy'); }, COPIED_MS);
  }

  dismiss() {
    const hadFocus = this.ui.bar.contains(document.activeElement);
    this.ui.status.textContent = '';
    this.ui.saved.hidden = true;
    this.render();
    if (hadFocus) (this.ui.bar.hidden ? this.fallbackFocus() : this.ui.button).focus();
  }

  showStatus(text, isError) {
    this.ui.status.textContent = text;
    this.ui.status.classList.toggle('error', isError);
    this.render();
  }

  forgetPrevious() {
    if (this.previous === null) return;
    clearTimeout(this.previous.timer);
    this.previous = null;
  }

  render() {
    const target = this.target;
    // A chat already saved is not offered again: its link is in the notice.
    const alreadySaved = this.saved !== null && this.saved.chat === target && !this.ui.saved.hidden;
    const offer = !this.off && target !== null && this.pending === null && !alreadySaved;
    const hadFocus = document.activeElement === this.ui.button;
    this.ui.button.hidden = !offer;
    const notice = Boolean(this.ui.status.textContent) || !this.ui.saved.hidden;
    this.ui.close.hidden = this.pending !== null || !notice;
    this.ui.bar.hidden = this.off || (!offer && !notice);
    // The button went away under the keyboard: keep focus somewhere sensible.
    if (hadFocus && this.ui.button.hidden) {
      (this.ui.saved.hidden || this.ui.bar.hidden ? this.fallbackFocus() : this.ui.link).focus();
    }
  }
}

/**
 * The "Your data" panel: "Download my data" (the node's export as a JSON file, and its
 * counts in a sentence) and "Erase my data" (after a confirmation dialog: what was removed,
 * and what was kept and why). Both are same-origin requests that the node authenticates by
 * the `tandem_id` cookie its WebSocket handshake set; a browser that never connected has
 * none, and nothing is stored for it.
 */
export class YourData {
  /**
   * @param {object} options
   * @param {(removed: object) => void} options.onErased  after an erase, with its counts
   */
  constructor({ onErased }) {
    const $ = (id) => document.getElementById(id);
    this.ui = {
      exportButton: $('export-data'),
      eraseButton: $('erase-data'),
      summary: $('your-data-summary'),
      file: $('your-data-file'),
      result: $('your-data-result'),
      dialog: $('erase-dialog'),
    };
    this.onErased = onErased;
    this.fileUrl = null;
    this.ui.exportButton.addEventListener('click', () => this.download());
    this.ui.eraseButton.addEventListener('click', () => this.askErase());
    this.ui.dialog.addEventListener('close', () => {
      if (this.ui.dialog.returnValue === 'erase') this.erase();
    });
  }

  async download() {
    this.busy(true);
    this.say(this.ui.summary, t('data.fetching'));
    try {
      const response = await request('GET', '/api/privacy/export');
      if (response.status === 401) {
        this.say(this.ui.summary, t('data.nothing'));
        this.offerFile(null);
        return;
      }
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      this.offerFile(data);
      this.say(this.ui.summary, exportSummary(data));
      this.ui.file.click();
    } catch {
      this.say(this.ui.summary, t('data.fetch_failed'), true);
    } finally {
      this.busy(false);
    }
  }

  /** The export as a JSON file behind the "your data" link (null: no file). */
  offerFile(data) {
    if (this.fileUrl !== null) URL.revokeObjectURL(this.fileUrl);
    this.fileUrl = null;
    this.ui.file.hidden = data === null;
    if (data === null) {
      this.ui.file.removeAttribute('href');
      return;
    }
    const blob = new Blob([`${JSON.stringify(data, null, 2)}\n`], { type: 'application/json' });
    this.fileUrl = URL.createObjectURL(blob);
    this.ui.file.href = this.fileUrl;
    this.ui.file.download = `tandem-data-${new Date().toISOString().slice(0, 10)}.json`;
  }

  askErase() {
    this.ui.dialog.returnValue = '';
    this.ui.dialog.showModal();
  }

  async erase() {
    this.busy(true);
    this.say(this.ui.result, t('data.erasing'));
    try {
      const response = await request('POST', '/api/privacy/erase');
      if (response.status === 401) {
        this.say(this.ui.result, t('data.nothing'));
        return;
      }
      if (!response.ok) throw new Error(String(response.status));
      const answer = await response.json();
      this.showErased(answer);
      // A file downloaded before now describes what is gone.
      this.offerFile(null);
      this.ui.summary.textContent = '';
      this.ui.summary.hidden = true;
      this.onErased(answer.removed ?? {});
    } catch {
      this.say(this.ui.result, t('data.erase_failed'), true);
    } finally {
      this.busy(false);
    }
  }

  /** "Erased: 1 saved chat, …" and, in a list, what the node kept and why. */
  showErased(answer) {
    const removed = answer.removed ?? {};
    const parts = COUNTED.map(([key, words]) => count(removed[key], words, { zero: false }))
      .filter((part) => part !== null);
    const sentence = document.createElement('p');
    sentence.textContent = parts.length
      ? t('data.erased', { what: listFormat(parts) })
      : t('data.erased_nothing');
    const nodes = [sentence];
    const kept = Array.isArray(answer.kept) ? answer.kept : [];
    if (kept.length) {
      const intro = document.createElement('p');
      intro.textContent = t('data.kept');
      const list = document.createElement('ul');
      for (const item of kept) {
        const entry = document.createElement('li');
        const what = document.createElement('strong');
        what.textContent = String(item?.what ?? '');
        entry.append(what, `: ${String(item?.why ?? '')}`);
        list.append(entry);
      }
      nodes.push(intro, list);
    }
    this.ui.result.replaceChildren(...nodes);
    this.ui.result.classList.remove('error');
    this.ui.result.hidden = false;
  }

  say(element, text, isError = false) {
    element.textContent = text;
    element.classList.toggle('error', isError);
    element.hidden = !text;
  }

  busy(on) {
    this.ui.exportButton.disabled = on;
    this.ui.eraseButton.disabled = on;
  }
}

/** The export's lists and counts: [field, how a count of them reads]. */
const COUNTED = [
  ['saved_logs', (n) => plural('data.count.saved_logs', n)],
  ['reports_filed', (n) => plural('data.count.reports_filed', n)],
  ['reports_against', (n) => plural('data.count.reports_against', n)],
  ['bans', (n) => plural('data.count.bans', n)],
  ['blocks', (n) => plural('data.count.blocks', n)],
];

/** "1 saved chat, no reports you filed, …" from the export. */
export function exportSummary(data) {
  const parts = COUNTED.map(([key, words]) => count(data?.[key], words))
    .filter((part) => part !== null);
  const client = typeof data?.client === 'string' ? data.client : '';
  return client
    ? t('data.summary_client', { client, what: listFormat(parts) })
    : t('data.summary', { what: listFormat(parts) });
}

/** "1 saved chat", "3 saved chats", "no saved chats" (none when `zero` is false); null when
 * the field is missing. */
function count(value, words, { zero = true } = {}) {
  const n = Array.isArray(value) ? value.length : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) return null;
  if (n === 0 && !zero) return null;
  return words(n);
}

/** A same-origin JSON request carrying the node's cookie. */
function request(method, path) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { accept: 'application/json' },
  };
  if (method === 'POST') {
    init.headers['content-type'] = 'application/json';
    init.body = '{}';
  }
  return fetch(path, init);
}
