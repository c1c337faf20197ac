// The conversation: lines from you and the stranger, system lines, and "Stranger is
// typing…". Text is always put in as text, never as HTML: a stranger cannot inject markup.

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

  /** A chat line; `who` is `me` or `stranger`. Screen readers hear "You:" or "Stranger:". */
  line(who, text) {
    const item = document.createElement('li');
    item.className = `line ${who}`;
    const name = document.createElement('strong');
    name.className = 'who';
    name.textContent = who === 'me' ? 'You:' : 'Stranger:';
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

  /** Shows or hides "Stranger is typing…". */
  setTyping(on) {
    clearTimeout(this.typingTimer);
    this.typing.textContent = on ? 'Stranger is typing…' : '';
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
