// Stills of the user's own camera for the node's automated moderation: while a video chat
// lasts, every `limits.snapshot_interval_ms` (0: the node asks none) the page draws the
// local video at most 320 pixels wide, encodes it as JPEG (at most 65,504 bytes, the
// quality lowered until it fits) and sends it as a binary frame: the chat id's 8 bytes,
// then the image. Nothing is kept here.

const MAX_WIDTH = 320;
const MAX_BYTES = 65_504;
const QUALITIES = [0.7, 0.5, 0.3];

export class Stills {
  /** `video`: the local <video>; `send(bytes)`: sends a binary frame, false if it could not. */
  constructor({ video, send }) {
    this.video = video;
    this.send = send;
    this.timer = 0;
    this.chat = null;
    this.sent = 0; // stills sent so far (for the curious, and the tests)
    this.canvas = document.createElement('canvas');
  }

  /** Sends a still every `intervalMs` while `chat` lasts (nothing when 0). */
  start(chat, intervalMs) {
    this.stop();
    if (!(intervalMs > 0)) return;
    this.chat = chat;
    this.timer = setInterval(() => this.take(), intervalMs);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
    this.chat = null;
  }

  async take() {
    const chat = this.chat;
    const { video } = this;
    if (chat === null || !video.videoWidth) return;
    const width = Math.min(MAX_WIDTH, video.videoWidth);
    const height = Math.max(1, Math.round(video.videoHeight * (width / video.videoWidth)));
    this.canvas.width = width;
    this.canvas.height = height;
    this.canvas.getContext('2d').drawImage(video, 0, 0, width, height);
    for (const quality of QUALITIES) {
      const blob = await new Promise((resolve) => this.canvas.toBlob(resolve, 'image/jpeg', quality));
      if (!blob || blob.size > MAX_BYTES) continue;
      if (this.chat !== chat) return; // the chat ended meanwhile
      const image = new Uint8Array(await blob.arrayBuffer());
      const frame = new Uint8Array(8 + image.length);
      frame.set(chatBytes(chat));
      frame.set(image, 8);
      if (this.send(frame)) this.sent += 1;
      return;
    }
  }
}

/** A chat id (16 hex digits) as 8 big-endian bytes. */
function chatBytes(chat) {
  const bytes = new Uint8Array(8);
  for (let i = 0; i < 8; i += 1) bytes[i] = parseInt(String(chat).substr(i * 2, 2), 16);
  return bytes;
}
