// One video call: one RTCPeerConnection for one chat, closed when the chat ends. A new chat
// gets a new Call, so nothing (tracks, candidates, state) leaks from one stranger to the next.
//
// Signaling goes through the server's `signal` message as opaque JSON:
//   {type: "offer" | "answer", sdp}
//   {type: "candidate", candidate: RTCIceCandidateInit}
//   {type: "media", video: bool}   this side turned its camera off (false) or on (true)
// The side the server made the initiator sends the offer; the other answers.

export class Call {
  /**
   * @param {object} options
   * @param {RTCIceServer[]} options.iceServers       from `matched.ice_servers`
   * @param {boolean} options.relayOnly                 only through TURN (hides addresses)
   * @param {MediaStream} options.localStream          camera and microphone
   * @param {(data: object) => void} options.signal    sends signaling to the partner
   * @param {(stream: MediaStream) => void} options.onRemoteStream
   * @param {(state: RTCPeerConnectionState) => void} options.onState
   * @param {(media: {video: boolean}) => void} [options.onRemoteMedia]  the stranger's camera
   */
  constructor({
    iceServers, relayOnly = false, localStream, signal, onRemoteStream, onState,
    onRemoteMedia = () => {},
  }) {
    this.signal = signal;
    this.onRemoteMedia = onRemoteMedia;
    this.closed = false;
    this.pendingCandidates = [];
    this.pc = new RTCPeerConnection({
      iceServers: iceServers.map(toRtcIceServer),
      iceTransportPolicy: relayOnly ? 'relay' : 'all',
    });
    for (const track of localStream.getTracks()) this.pc.addTrack(track, localStream);
    this.pc.addEventListener('track', (event) => {
      if (this.closed) return;
      onRemoteStream(event.streams[0] ?? new MediaStream([event.track]));
    });
    this.pc.addEventListener('icecandidate', (event) => {
      if (!this.closed && event.candidate) {
        this.signal({ type: 'candidate', candidate: event.candidate.toJSON() });
      }
    });
    this.pc.addEventListener('connectionstatechange', () => {
      if (!this.closed) onState(this.pc.connectionState);
    });
  }

  /** Starts the exchange: the initiator offers, the other side waits for the offer. */
  async start(initiator) {
    if (!initiator) return;
    const offer = await this.pc.createOffer();
    if (this.closed) return;
    await this.pc.setLocalDescription(offer);
    if (this.closed) return;
    this.signal({ type: 'offer', sdp: this.pc.localDescription.sdp });
  }

  /** Handles the partner's signaling. The partner is a stranger: anything malformed is dropped. */
  async handle(data) {
    if (this.closed || !data || typeof data !== 'object') return;
    if (data.type === 'media') {
      if (typeof data.video === 'boolean') this.onRemoteMedia({ video: data.video });
      return;
    }
    try {
      if ((data.type === 'offer' || data.type === 'answer') && typeof data.sdp === 'string') {
        await this.pc.setRemoteDescription({ type: data.type, sdp: data.sdp });
        for (const candidate of this.pendingCandidates.splice(0)) {
          await this.pc.addIceCandidate(candidate);
        }
        if (data.type === 'offer' && !this.closed) {
          const answer = await this.pc.createAnswer();
          if (this.closed) return;
          await this.pc.setLocalDescription(answer);
          if (this.closed) return;
          this.signal({ type: 'answer', sdp: this.pc.localDescription.sdp });
        }
      } else if (data.type === 'candidate' && data.candidate && typeof data.candidate === 'object') {
        // Candidates can overtake the description they belong to: keep them until it is set.
        if (this.pc.remoteDescription) {
          await this.pc.addIceCandidate(data.candidate);
        } else {
          this.pendingCandidates.push(data.candidate);
        }
      }
    } catch (error) {
      if (!this.closed) console.warn('tandem: signaling from the partner failed', error);
    }
  }

  /** Tells the stranger this side's camera is off (`video: false`) or on again. */
  tellMedia({ video }) {
    if (!this.closed) this.signal({ type: 'media', video });
  }

  /** Ends the call; the local camera keeps running for the next one. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.pendingCandidates = [];
    this.pc.close();
  }
}

/** `matched.ice_servers` (or `welcome.ice_servers`) entries (`urls`, `username`, `credential`) as RTCIceServer. */
function toRtcIceServer(server) {
  const out = { urls: server.urls };
  if (server.username) out.username = server.username;
  if (server.credential) out.credential = server.credential;
  return out;
}
