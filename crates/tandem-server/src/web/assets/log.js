// The conversation: lines from you and the stranger, system lines, and "Stranger is
// typing…". Text is always put in as text, never as HTML: a stranger cannot inject markup.

import { t } from './i18n.js';

/** The partner's indicator turns off by itself if their "off" never comes. */
const PARTNER_TYPING_MAX_MS = 15000;

export class ChatLog {
  /**
   * @param {HTMLOListElement} list   the `role="log"` list
   * @param {HTMLElement} typing      the live region for the typing indicator
   */
  constructor(list, typing) {
    this.list = list;
    this.typing = typing;
    this.typingTimer = 0;
  }

  clear() {
    this.list.replaceChildren();
  }

  /**
   * A chat line; `who` is `me`, `stranger`, or in spy mode `stranger1` / `stranger2`.
   * Screen readers hear "You:", "Stranger:", "Stranger 1:".
   */
  line(who, text) {
    const item = document.createElement('li');
    item.className = `line ${who.startsWith('stranger') ? `stranger ${who}` : who}`;
    const name = document.createElement('strong');
    name.className = 'who';
    name.textContent = WHO[who]?.() ?? t('log.stranger');
    const body = document.createElement('span');
    body.className = 'text';
    // Each line takes its own direction from its text: Arabic reads right to left inside
    // an English page, and the other way round.
    body.dir = 'auto';
    body.textContent = text;
    item.append(name, ' ', body);
    this.append(item);
  }

  /** A line from the page itself ("Stranger skipped you."). */
  system(text) {
    const item = document.createElement('li');
    item.className = 'line system';
    item.textContent = text;
    this.append(item);
  }

  /** Shows or hides "Stranger is typing…" (in spy mode, `who` says which stranger). */
  setTyping(on, who = 'stranger') {
    clearTimeout(this.typingTimer);
    this.typing.textContent = on ? (TYPING[who]?.() ?? t('log.typing')) : '';
    if (on) this.typingTimer = setTimeout(() => this.setTyping(false), PARTNER_TYPING_MAX_MS);
  }

  /** Appends, following the conversation unless the user scrolled up to read. */
  append(item) {
    const list = this.list;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    list.append(item);
    if (atBottom) list.scrollTop = list.scrollHeight;
  }
}

const WHO = {
  me: () => t('log.you'),
  stranger: () => t('log.stranger'),
  stranger1: () => t('log.stranger1'),
  stranger2: () => t('log.stranger2'),
};

const TYPING = {
  stranger: () => t('log.typing'),
  stranger1: () => t('log.typing1'),
  stranger2: () => t('log.typing2'),
};
