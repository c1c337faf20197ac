// The WebSocket to the node, reopened with exponential backoff when it drops.
//
// Events (all CustomEvent, the message in `detail`):
//   welcome  the node greeted a new connection (first or after a reconnect)
//   message  any other server message
//   down     the connection dropped; `detail.retryIn` ms until the next attempt

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15_000;

export class Connection extends EventTarget {
  constructor(url = defaultUrl()) {
    super();
    this.url = url;
    this.ws = null;
    this.wanted = false; // whether the page wants to be connected
    this.welcome = null; // the last welcome, while connected
    this.attempt = 0;
    this.timer = 0;
    // Back online after a network change: do not sit out the backoff.
    window.addEventListener('online', () => this.retryNow());
  }

  /** Whether the node has greeted this connection, so messages may be sent. */
  get ready() {
    return this.welcome !== null && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Connects, and keeps reconnecting until `close()`. */
  open() {
    this.wanted = true;
    if (!this.ws && !this.timer) this.connect();
  }

  /** Closes for good (until the next `open()`). */
  close() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.timer = 0;
    this.ws?.close(1000, 'bye');
    this.ws = null;
    this.welcome = null;
  }

  /** Tries at once instead of waiting out the backoff. */
  retryNow() {
    if (this.wanted && !this.ws) {
      clearTimeout(this.timer);
      this.timer = 0;
      this.connect();
    }
  }

  /** Sends a client message; false if not connected (the caller decides what that means). */
  send(message) {
    if (!this.ready) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  connect() {
    this.timer = 0;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener('message', (event) => {
      if (ws !== this.ws || typeof event.data !== 'string') return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === 'welcome') {
        this.welcome = message;
        this.attempt = 0;
        this.emit('welcome', message);
      } else {
        this.emit('message', message);
      }
    });
    ws.addEventListener('close', () => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.welcome = null;
      if (!this.wanted) return;
      const retryIn = backoff(this.attempt++);
      this.timer = setTimeout(() => this.connect(), retryIn);
      this.emit('down', { retryIn });
    });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** `/ws` on the host that served the page, `wss:` when the page came over https. */
function defaultUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

/** 0.5 s, 1 s, 2 s, … up to 15 s, each ±25 % so that a restarted node is not hit at once. */
export function backoff(attempt) {
  const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}
