// The WebSocket to the node, reopened with exponential backoff when it drops.
//
// Events (all CustomEvent, the message in `detail`):
//   welcome  the node greeted a new connection (first or after a reconnect)
//   message  any other server message
//   down     the connection dropped; `detail.retryIn` ms until the next attempt
//   banned   the node refused this user (`error` with code `banned`); it closes the
//            connection, and this one does not reconnect: trying again would be refused too
//
// Every connection names this browser's device hint (`?device=`), a random id kept in
// localStorage: the node keeps it with reports so that a moderator can ban a device.

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15_000;
const DEVICE_KEY = 'tandem.device';
/** What the node takes as a device hint: 8 to 64 of A-Z a-z 0-9 _ -. */
const DEVICE_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

export class Connection extends EventTarget {
  constructor(url = defaultUrl()) {
    super();
    this.url = url;
    this.ws = null;
    this.wanted = false; // whether the page wants to be connected
    this.welcome = null; // the last welcome, while connected
    this.banned = null; // the `banned` error, once the node refused this user
    this.attempt = 0;
    this.timer = 0;
    // Back online after a network change: do not sit out the backoff.
    window.addEventListener('online', () => this.retryNow());
  }

  /** Whether the node has greeted this connection, so messages may be sent. */
  get ready() {
    return this.welcome !== null && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Connects, and keeps reconnecting until `close()` (or a ban). */
  open() {
    if (this.banned) return;
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

  /** Sends a binary frame (a video still); false if not connected. */
  sendBinary(bytes) {
    if (!this.ready) return false;
    this.ws.send(bytes);
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
      } else if (message.type === 'error' && message.code === 'banned') {
        // The node closes the connection next (1008); it must not be reopened.
        this.banned = message;
        this.wanted = false;
        clearTimeout(this.timer);
        this.timer = 0;
        this.welcome = null;
        this.emit('banned', message);
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

/** `/ws` on the host that served the page, `wss:` when the page came over https, with the
 * device hint. */
function defaultUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws?device=${encodeURIComponent(deviceId())}`;
}

/**
 * This browser's device hint: 22 characters of base64url (128 random bits), made once and
 * kept in localStorage. Without storage (a private window that refuses it) it lasts as long
 * as the page.
 */
export function deviceId() {
  let stored = null;
  try {
    stored = localStorage.getItem(DEVICE_KEY);
  } catch {
    // Storage refused: a fresh id for this page.
  }
  if (stored && DEVICE_PATTERN.test(stored)) return stored;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const id = btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
  try {
    localStorage.setItem(DEVICE_KEY, id);
  } catch {
    // Not kept: the next page load makes another.
  }
  return id;
}

/** 0.5 s, 1 s, 2 s, … up to 15 s, each ±25 % so that a restarted node is not hit at once. */
export function backoff(attempt) {
  const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** Math.min(attempt, 10));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}
