// The chat page: the landing form, then text or video chats with strangers, spoken over the
// client protocol (docs/protocol.md) through one WebSocket. This file is the page's state
// machine; the form, the conversation, the connection and the call live in their modules.
//
// Moderation, as the user sees it: Report (the current stranger: report and skip), "Report
// the previous stranger" for a minute after a chat ends (the node keeps a chat's last lines
// that long), a notice that stays until dismissed ("Thanks. You won't be matched with this
// person again."), and a banned screen that ends the page's connection for good.
//
// Privacy (privacy.js): "Save this chat" during a chat and for five minutes after it, and the
// "Your data" panel on the landing view.

import { Call } from './call.js';
import { LANG, formatNumber, listFormat, t, wireSwitcher } from './i18n.js';
import { Prover } from './challenge.js';
import { Stills } from './stills.js';
import { Connection } from './connection.js';
import { Landing, cameraErrorText, openCamera } from './landing.js';
import { ChatLog } from './log.js';
import { countryName } from './places.js';
import { SaveChat, YourData } from './privacy.js';

/** Our typing indicator turns off after this long without a keystroke. */
const TYPING_IDLE_MS = 4000;
/** A first Esc arms the skip for this long; a second one within it skips. */
const ESC_WINDOW_MS = 3000;
const STATS_EVERY_MS = 10_000;
/** The chat that ended last can be reported this long after it ended (the node's limit). */
const PREVIOUS_REPORT_MS = 60_000;
/** A report not answered in this long is taken as lost. */
const REPORT_ANSWER_MS = 20_000;

const $ = (id) => document.getElementById(id);
const ui = {
  landing: $('landing'),
  chat: $('chat'),
  stage: $('stage'),
  remoteVideo: $('remote-video'),
  remoteNote: $('remote-note'),
  localVideo: $('local-video'),
  videoModeration: $('video-moderation'),
  toggleMic: $('toggle-mic'),
  toggleCamera: $('toggle-camera'),
  status: $('chat-status'),
  composer: $('composer'),
  message: $('message'),
  send: $('send'),
  next: $('next'),
  nextLabel: $('next-label'),
  hint: $('shortcut-hint'),
  unmute: $('unmute'),
  report: $('report'),
  stop: $('stop'),
  reportDialog: $('report-dialog'),
  reportForm: $('report-form'),
  reportTitle: $('report-title'),
  reportIntro: $('report-intro'),
  reportNote: $('report-note'),
  reportConfirm: $('report-confirm'),
  reportBar: $('report-bar'),
  reportStatus: $('report-status'),
  reportStatusClose: $('report-status-close'),
  reportPrevious: $('report-previous'),
  banned: $('banned'),
  bannedTitle: $('banned-title'),
  bannedReason: $('banned-reason'),
  bannedUntil: $('banned-until'),
  bannedRef: $('banned-ref'),
  banner: $('banner'),
  bannerText: $('banner-text'),
  retry: $('retry'),
  online: $('online'),
  onlineText: $('online-text'),
  spyQuestion: $('spy-question'),
  remoteCameraOff: $('remote-camera-off'),
};

/**
 * Everything the page knows. `phase`:
 *   landing     the form; not connected
 *   connecting  chat view, waiting for the node's welcome before joining
 *   waiting     joined; looking for a stranger
 *   chatting    matched with `chat`
 *   ended       the chat is over; Next starts a new one
 *   offline     the connection dropped; `resume` says whether to look again once back
 *   banned      the node refused this user; the page shows why and stays disconnected
 *
 * Reporting: `previous` is the chat that ended last while it may still be reported
 * ({chat, timer}); `reportTarget` what the open dialog reports ({chat, current});
 * `pendingReport` a report sent and not answered yet ({chat, timer}); `lastReported` the
 * chat reported last, never offered again.
 */
const state = {
  phase: 'landing',
  prefs: null,
  chat: null,
  partner: null,
  call: null,
  localStream: null,
  resume: false,
  escArmed: false,
  escTimer: 0,
  typingSent: false,
  typingTimer: 0,
  bannerTimer: 0,
  previous: null,
  reportTarget: null,
  pendingReport: null,
  lastReported: null,
  endNote: null, // how the last chat ended, as the page says it
  spy: null, // in spy mode, `matched.spy` of the current chat ({role, question})
  spyTyping: { 1: false, 2: false }, // in spy mode, which stranger is typing
};

const connection = new Connection();
const prover = new Prover();
const stills = new Stills({
  video: $('local-video'),
  send: (bytes) => connection.sendBinary(bytes),
});
/** Joins started; a join still waiting for its proof gives up when another starts. */
let joins = 0;
/** Fresh challenges answered in a row for one join: a node that keeps refusing is told. */
let challengeRetries = 0;
const MAX_CHALLENGE_RETRIES = 3;
/** The proof of the join waiting for its answer, sent again if the node could not check it. */
let proofSent = null;
const landing = new Landing($('start-form'));
const log = new ChatLog($('log'), $('typing'));
const saveChat = new SaveChat({
  send: (message) => connection.send(message),
  onSettled: () => closeIfIdle(),
  fallbackFocus: () => (ui.chat.hidden ? landing.start : ui.message),
});
new YourData({
  // The saved chats are gone: the notice's link would lead nowhere.
  onErased: (removed) => { if (removed.saved_logs) saveChat.forgetSaved(); },
});

// ---- landing ---------------------------------------------------------------------------

async function onStart(event) {
  event.preventDefault();
  // The node refused this user while the form was being filled in (the connection opens
  // at the first touch of the form): the banned screen stays.
  if (connection.banned) {
    onBanned(connection.banned);
    return;
  }
  landing.showError('');
  if (!landing.adult.checked) {
    landing.showError(t('form.adult_required'));
    landing.adult.focus();
    return;
  }
  const prefs = landing.read();
  if (prefs.style === 'ask' && !prefs.question) {
    landing.showError(t('form.question_required'));
    landing.question.focus();
    return;
  }
  landing.save(prefs);
  state.prefs = prefs;
  if (prefs.mode === 'video') {
    landing.busy(t('form.starting_camera'));
    try {
      state.localStream = await openCamera();
    } catch (error) {
      landing.showError(cameraErrorText(error));
      return;
    } finally {
      landing.busy('');
    }
    ui.localVideo.srcObject = state.localStream;
    // A new camera starts on, and so do its buttons.
    resetMediaButtons();
  }
  enterChat();
}

// ---- chat view -------------------------------------------------------------------------

function enterChat() {
  ui.landing.hidden = true;
  ui.chat.hidden = false;
  ui.chat.classList.toggle('video-mode', state.prefs.mode === 'video');
  ui.stage.hidden = state.prefs.mode !== 'video';
  log.clear();
  if (connection.ready) {
    join();
  } else {
    setPhase('connecting');
    connection.open();
  }
}

/** The `join` for the form's choices (docs/protocol.md). */
function joinMessage(prefs) {
  const { mode, lang } = prefs;
  const message = { type: 'join', adult: true, mode, lang, auto_reroll: prefs.autoReroll };
  if (prefs.style === 'ask') return { ...message, spy: true, question: prefs.question };
  if (prefs.style === 'discuss') return { ...message, spy_ok: true };
  message.interests = prefs.interests;
  // A node that cannot tell countries would never meet a country filter.
  message.countries = prefs.countriesKnown ? prefs.countries : [];
  if (prefs.gender) message.gender = prefs.gender;
  if (prefs.wantGender.length) message.want_gender = prefs.wantGender;
  if (prefs.college) {
    message.college = true;
    message.same_college = prefs.sameCollege;
  }
  if (prefs.entitlement && (prefs.wantGender.length || prefs.college)) {
    message.entitlement = prefs.entitlement;
  }
  return message;
}

async function join() {
  const message = joinMessage(state.prefs);
  const mine = ++joins;
  if (prover.needed) {
    // The first join of a connection proves the browser did the node's work; it is
    // usually done by now, while the form was filled in.
    setPhase('connecting');
    ui.status.textContent = t('status.checking');
    const proof = await prover.proof();
    if (mine !== joins || state.phase !== 'connecting' || !connection.ready) return;
    if (proof) message.proof = proof;
    prover.spent();
    proofSent = proof;
  }
  connection.send(message);
  setPhase('waiting');
}

/** A join refused for its proof: solve the fresh challenge and join again. */
function onChallengeRefused(message) {
  prover.reset(message.challenge ?? null);
  if (state.phase !== 'waiting') return;
  if (challengeRetries >= MAX_CHALLENGE_RETRIES) {
    challengeRetries = 0;
    stop();
    landing.showError(t('form.challenge_failed'));
    return;
  }
  challengeRetries += 1;
  join();
}

function stop() {
  // A spy's chat is neither reported nor saved: nothing of it is offered afterwards.
  const ended = state.spy?.role === 'spy' ? null : state.chat;
  if (state.chat !== null || state.phase === 'waiting') connection.send({ type: 'leave' });
  endChat();
  // The stranger can still be reported for a minute: the connection (where the node keeps
  // the chat's lines) stays open that long, idle, unless there is nothing to report. The
  // chat can be saved as long as it stays open.
  if (ended !== null) {
    offerPrevious(ended);
    saveChat.chatEnded(ended);
  }
  hideBanner();
  for (const track of state.localStream?.getTracks() ?? []) track.stop();
  state.localStream = null;
  ui.localVideo.srcObject = null;
  setPhase('landing');
  closeIfIdle();
  ui.chat.hidden = true;
  ui.landing.hidden = false;
  landing.start.focus();
}

/** On the landing view, closes the connection once no report (or save) needs it. */
function closeIfIdle() {
  if (state.phase === 'landing' && state.previous === null && state.pendingReport === null
      && !saveChat.busy) {
    connection.close();
    // The node forgets the connection's chats with it.
    saveChat.withdraw();
  }
}

function next() {
  disarmEsc();
  if (state.phase === 'chatting') {
    connection.send({ type: 'next' });
  } else if (state.phase === 'ended') {
    join();
  }
}

/** Ends the local side of the current chat (the call, the indicators). */
function endChat() {
  stills.stop();
  state.call?.close();
  state.call = null;
  ui.remoteVideo.srcObject = null;
  ui.unmute.hidden = true;
  ui.stage.classList.remove('connected');
  stopTyping(false);
  log.setTyping(false);
  state.chat = null;
  state.partner = null;
  state.spy = null;
  state.spyTyping = { 1: false, 2: false };
  ui.spyQuestion.hidden = true;
  ui.remoteCameraOff.hidden = true;
}

function setPhase(phase) {
  state.phase = phase;
  document.body.dataset.phase = phase;
  const chatting = phase === 'chatting';
  // A spy only watches.
  const writes = chatting && state.spy?.role !== 'spy';
  ui.message.disabled = !writes;
  ui.send.disabled = !writes;
  ui.message.placeholder = chatting && !writes ? t('spy.cannot_write') : t('chat.message_placeholder');
  // A spy's chat has no partner of its own to report or lines of its own to save.
  ui.report.disabled = !chatting || state.pendingReport !== null || state.spy?.role === 'spy';
  ui.next.disabled = !(chatting || phase === 'ended');
  ui.nextLabel.textContent = phase === 'ended' ? t('chat.new') : t('chat.next');
  ui.next.classList.toggle('armed', false);
  ui.status.textContent = statusText(phase);
  ui.remoteNote.textContent = remoteNoteText(phase);
  ui.remoteNote.hidden = false;
}

function statusText(phase) {
  switch (phase) {
    case 'connecting': return t('status.connecting');
    case 'waiting':
      if (state.prefs?.style === 'ask') return t('status.waiting_ask');
      if (state.prefs?.style === 'discuss') return t('status.waiting_discuss');
      return t('status.waiting');
    case 'chatting': {
      if (state.spy?.role === 'spy') return t('status.spy_watching');
      const country = state.partner?.country;
      const college = state.partner?.college;
      if (college) return t('status.connected_college', { college });
      return country && country !== 'ZZ'
        ? t('status.connected_from', { country: countryName(country) })
        : t('status.connected');
    }
    case 'ended': return t('status.ended');
    case 'offline': return t('status.offline');
    default: return '';
  }
}

function remoteNoteText(phase) {
  switch (phase) {
    case 'chatting': return t('video.connecting');
    case 'ended': return state.endNote ?? t('video.ended');
    case 'offline': return t('video.lost');
    default: return t('video.looking');
  }
}

// ---- server messages -------------------------------------------------------------------

function onWelcome(welcome) {
  prover.reset(welcome.challenge ?? null);
  challengeRetries = 0;
  hideBanner();
  refreshOnline();
  if (state.phase === 'connecting') {
    join();
  } else if (state.phase === 'offline') {
    if (state.resume) {
      log.system(t('log.reconnected'));
      join();
    } else {
      setPhase('ended');
    }
  }
}

function onMessage(message) {
  // Answers to a report may come after Stop, while the connection waits on the landing view.
  if (message.type === 'reported') {
    onReported();
    return;
  }
  if (message.type === 'error' && isReportError(message)) {
    onReportError(message);
    return;
  }
  if (message.type === 'error'
      && (message.code === 'challenge_required' || message.code === 'challenge_failed')) {
    onChallengeRefused(message);
    return;
  }
  if (message.type === 'waiting' || message.type === 'matched') {
    challengeRetries = 0;
    proofSent = null;
  }
  if (message.type === 'error' && message.code === 'unavailable' && proofSent
      && state.phase === 'waiting') {
    // The node could not check the proof now: the same proof goes again in a moment.
    prover.restore(proofSent);
    proofSent = null;
    setTimeout(() => { if (state.phase === 'waiting') join(); }, 1000);
    return;
  }
  // So may the answer to "Save this chat".
  if (saveChat.handle(message)) return;
  if (state.phase === 'landing' || state.phase === 'banned') return;
  switch (message.type) {
    case 'waiting':
      if (state.phase !== 'chatting') setPhase('waiting');
      break;
    case 'matched':
      onMatched(message);
      break;
    case 'msg':
      if (message.chat === state.chat && typeof message.text === 'string') {
        log.setTyping(false);
        log.line('stranger', message.text);
        if (document.hidden) countUnread();
      }
      break;
    case 'typing':
      if (message.chat === state.chat) log.setTyping(message.on === true);
      break;
    case 'spy_msg':
      // Spy mode: what stranger 1 or 2 wrote, to the spy who asked.
      if (message.chat === state.chat && typeof message.text === 'string'
          && (message.from === 1 || message.from === 2)) {
        state.spyTyping[message.from] = false;
        showSpyTyping();
        log.line(`stranger${message.from}`, message.text);
        if (document.hidden) countUnread();
      }
      break;
    case 'spy_typing':
      if (message.chat === state.chat && (message.from === 1 || message.from === 2)) {
        state.spyTyping[message.from] = message.on === true;
        showSpyTyping();
      }
      break;
    case 'signal':
      if (message.chat === state.chat) state.call?.handle(message.data);
      break;
    case 'ended':
      if (message.chat === state.chat) onEnded(message.reason);
      break;
    case 'idle':
      if (state.phase === 'waiting') setPhase('ended');
      break;
    case 'error':
      onError(message);
      break;
    default:
      break;
  }
}

function onMatched(message) {
  endChat();
  state.chat = message.chat;
  state.partner = message.partner ?? null;
  const spy = message.spy;
  state.spy = spy && typeof spy.question === 'string' ? spy : null;
  log.clear();
  setPhase('chatting');
  if (state.spy?.role !== 'spy') saveChat.chatStarted(state.chat);
  if (state.spy) {
    // Spy mode: the question heads the chat for all three.
    const asked = state.spy.role === 'spy';
    const question = state.spy.question;
    ui.spyQuestion.textContent = asked
      ? t('spy.you_asked', { question })
      : t('spy.question', { question });
    ui.spyQuestion.dir = 'auto';
    ui.spyQuestion.hidden = false;
    log.system(asked ? t('spy.watching') : t('spy.discussing'));
  } else {
    const common = Array.isArray(message.common_interests) ? message.common_interests : [];
    log.system(common.length
      ? t('log.matched_common', { interests: listFormat(common) })
      : t('log.matched'));
    if (!common.length && state.prefs.interests.length && state.prefs.style === 'one') {
      log.system(t('log.no_common'));
    }
  }
  if (state.prefs.mode === 'video' && state.localStream) {
    startCall(message.initiator === true, message.ice_servers);
    const every = connection.welcome?.limits?.snapshot_interval_ms ?? 0;
    stills.start(state.chat, every);
    ui.videoModeration.hidden = !(every > 0);
  }
  if (matchMedia('(pointer: fine)').matches) ui.message.focus();
}

function onEnded(reason) {
  const ended = state.chat;
  const spied = state.spy?.role === 'spy';
  endChat();
  if (!spied) {
    offerPrevious(ended);
    saveChat.chatEnded(ended);
  }
  switch (reason) {
    case 'skipped':
      log.system(t('end.skipped'));
      setPhase('waiting');
      break;
    case 'left':
      state.endNote = t('end.left');
      log.system(state.endNote);
      setPhase('ended');
      break;
    default:
      // Skipped, left or lost: each says so, in the log and over the video.
      // A spy's chat ends when either stranger goes.
      state.endNote = spied ? t('spy.ended') : (END_NOTES[reason] ?? END_NOTES.partner_disconnected)();
      log.system(state.endNote);
      if (state.prefs.autoReroll) {
        // Auto-reroll: the node already queued this user again.
        log.system(t('log.rerolling'));
        setPhase('waiting');
      } else {
        setPhase('ended');
      }
      break;
  }
}

/** The spy's typing indicator: one of the strangers who is typing, if any. */
function showSpyTyping() {
  const typing = [1, 2].find((n) => state.spyTyping[n]);
  log.setTyping(typing !== undefined, typing ? `stranger${typing}` : 'stranger');
}

/** Both media buttons back to "on", for a new camera. */
function resetMediaButtons() {
  ui.toggleMic.setAttribute('aria-pressed', 'false');
  ui.toggleMic.textContent = t('video.mute');
  ui.toggleCamera.setAttribute('aria-pressed', 'false');
  ui.toggleCamera.textContent = t('video.camera_off');
}

/** What the page says when the stranger ended the chat, by `ended.reason`. */
const END_NOTES = {
  partner_skipped: () => t('end.partner_skipped'),
  partner_left: () => t('end.partner_left'),
  partner_disconnected: () => t('end.partner_disconnected'),
};

function onError(message) {
  switch (message.code) {
    case 'stale_chat':
    case 'not_in_chat':
      // A line raced with the end of its chat; the server dropped it, as promised.
      break;
    case 'rate_limited':
      log.system(t('error.rate_limited'));
      break;
    case 'server_shutdown':
      log.system(t('error.server_shutdown'));
      break;
    case 'spy_cannot_write':
      log.system(t('spy.cannot_write'));
      break;
    case 'filtered':
      log.system(t('error.filtered'));
      break;
    case 'entitlement_required':
      if (state.phase === 'waiting') {
        // The pass was refused: back to the form, which says so.
        stop();
        landing.refusePass();
        landing.showError(t('premium.pass_refused'));
        break;
      }
      log.system(message.message);
      break;
    case 'invalid_value':
    case 'adult_required':
      if (state.phase === 'waiting') {
        // The join was refused: back to the form, with the server's reason.
        stop();
        landing.showError(t('error.join_refused', { why: message.message }));
        break;
      }
      log.system(message.message);
      break;
    default:
      log.system(message.message || t('common.something_wrong'));
  }
}

function onConnectionDown(retryIn) {
  // The node forgets a connection's chats with it: nothing from before can be reported (or
  // saved) now.
  withdrawPrevious();
  saveChat.withdraw();
  if (state.pendingReport !== null) {
    clearTimeout(state.pendingReport.timer);
    state.pendingReport = null;
    showReportStatus(t('report.dropped'), true);
  }
  if (state.phase === 'landing') {
    connection.close();
    return;
  }
  const wasLooking = ['connecting', 'waiting', 'chatting'].includes(state.phase);
  if (state.phase === 'chatting') log.system(t('log.connection_lost'));
  endChat();
  state.resume = wasLooking || (state.phase === 'offline' && state.resume);
  setPhase('offline');
  showBanner(retryIn);
}

// ---- typing --------------------------------------------------------------------------

function onInput() {
  autosize();
  if (state.phase !== 'chatting') return;
  if (!ui.message.value.trim()) {
    stopTyping(true);
    return;
  }
  if (!state.typingSent) {
    connection.send({ type: 'typing', chat: state.chat, on: true });
    state.typingSent = true;
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(() => stopTyping(true), TYPING_IDLE_MS);
}

function stopTyping(tell) {
  clearTimeout(state.typingTimer);
  if (state.typingSent && tell && state.chat !== null) {
    connection.send({ type: 'typing', chat: state.chat, on: false });
  }
  state.typingSent = false;
}

function onSend(event) {
  event.preventDefault();
  const text = ui.message.value.trim();
  if (!text || state.phase !== 'chatting') return;
  const max = connection.welcome?.limits?.max_text_chars ?? 2000;
  if ([...text].length > max) {
    log.system(t('error.too_long', { max: formatNumber(max) }));
    return;
  }
  if (!connection.send({ type: 'msg', chat: state.chat, text })) return;
  state.typingSent = false; // a message ends the partner's indicator by itself
  clearTimeout(state.typingTimer);
  log.line('me', text);
  ui.message.value = '';
  autosize();
}

function autosize() {
  ui.message.style.height = 'auto';
  ui.message.style.height = `${Math.min(ui.message.scrollHeight, 160)}px`;
}

// ---- keyboard ------------------------------------------------------------------------

function onKeyDown(event) {
  if (event.key !== 'Escape' || ui.chat.hidden || ui.reportDialog.open) return;
  if (state.phase === 'chatting') {
    event.preventDefault();
    if (state.escArmed) {
      next();
    } else {
      armEsc();
    }
  } else if (state.phase === 'ended') {
    event.preventDefault();
    next();
  }
}

function armEsc() {
  state.escArmed = true;
  ui.next.classList.add('armed');
  ui.nextLabel.textContent = t('chat.really');
  ui.hint.textContent = t('chat.esc_again');
  clearTimeout(state.escTimer);
  state.escTimer = setTimeout(disarmEsc, ESC_WINDOW_MS);
}

function disarmEsc() {
  clearTimeout(state.escTimer);
  if (!state.escArmed) return;
  state.escArmed = false;
  ui.next.classList.remove('armed');
  ui.nextLabel.textContent = state.phase === 'ended' ? t('chat.new') : t('chat.next');
  ui.hint.textContent = t('chat.shortcuts');
}

function onMessageKeyDown(event) {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
}

// ---- video ---------------------------------------------------------------------------

/** `?relay=1`: video only through the node's TURN relay, so that the stranger never learns
 * this browser's address (slower; needs a TURN server). */
const RELAY_ONLY = new URLSearchParams(location.search).get('relay') === '1';

function startCall(initiator, iceServers) {
  const chat = state.chat;
  const call = new Call({
    // This chat's credentials (fresh with every match); the connection's as a fallback.
    iceServers: iceServers?.length ? iceServers : (connection.welcome?.ice_servers ?? []),
    relayOnly: RELAY_ONLY,
    localStream: state.localStream,
    signal: (data) => {
      if (state.chat === chat) connection.send({ type: 'signal', chat, data });
    },
    onRemoteStream: (stream) => {
      // One stream carries both tracks: its second `track` event changes nothing here.
      if (ui.remoteVideo.srcObject === stream) return;
      ui.remoteVideo.srcObject = stream;
      ui.remoteVideo.muted = false;
      ui.remoteVideo.play().catch((error) => {
        if (error.name !== 'NotAllowedError') return;
        // The browser refused sound without a fresh click: play muted, offer the click.
        ui.remoteVideo.muted = true;
        ui.remoteVideo.play().catch(() => {});
        ui.unmute.hidden = false;
      });
    },
    onState: (connectionState) => onCallState(call, connectionState),
    onRemoteMedia: ({ video }) => {
      if (call === state.call) ui.remoteCameraOff.hidden = video;
    },
  });
  state.call = call;
  // A camera turned off before this chat: the stranger is told at once.
  if (state.localStream?.getVideoTracks()[0]?.enabled === false) call.tellMedia({ video: false });
  call.start(initiator).catch((error) => {
    console.warn('tandem: could not start the call', error);
    onCallState(call, 'failed');
  });
}

function onCallState(call, connectionState) {
  if (call !== state.call) return;
  const connected = connectionState === 'connected';
  ui.stage.classList.toggle('connected', connected);
  if (connected) {
    ui.remoteNote.hidden = true;
  } else if (connectionState === 'failed') {
    ui.remoteNote.hidden = false;
    ui.remoteNote.textContent = t('video.failed_note');
    log.system(t('video.failed_log'));
  } else if (connectionState === 'disconnected') {
    ui.remoteNote.hidden = false;
    ui.remoteNote.textContent = t('video.interrupted');
  }
}

function toggleTrack(kind, button, onLabel, offLabel) {
  const tracks = kind === 'audio'
    ? state.localStream?.getAudioTracks() ?? []
    : state.localStream?.getVideoTracks() ?? [];
  if (!tracks.length) return;
  const enabled = !tracks[0].enabled;
  for (const track of tracks) track.enabled = enabled;
  button.setAttribute('aria-pressed', String(!enabled));
  button.textContent = enabled ? onLabel() : offLabel();
  if (kind === 'video') {
    // The stranger sees black either way; this lets their page say why.
    state.call?.tellMedia({ video: enabled });
  }
}

// ---- report --------------------------------------------------------------------------

/** Opens the dialog for the current stranger (`current`) or the previous one. */
function openReport(current) {
  if (state.pendingReport !== null || ui.reportDialog.open) return;
  const chat = current
    ? (state.phase === 'chatting' ? state.chat : null)
    : state.previous?.chat ?? null;
  if (chat === null) return;
  state.reportTarget = { chat, current };
  ui.reportForm.reset();
  ui.reportTitle.textContent = current ? t('report.title_current') : t('report.title_previous');
  ui.reportIntro.textContent = current ? t('report.intro_current') : t('report.intro_previous');
  ui.reportConfirm.textContent = current ? t('report.confirm_current') : t('report.confirm_previous');
  ui.reportDialog.returnValue = '';
  ui.reportDialog.showModal();
}

function onReportClosed() {
  const target = state.reportTarget;
  state.reportTarget = null;
  if (ui.reportDialog.returnValue !== 'report' || target === null || state.phase === 'banned') return;
  const reason = ui.reportForm.elements.reason.value;
  if (!reason) return;
  const note = ui.reportNote.value.trim() || null;
  if (!connection.send({ type: 'report', chat: target.chat, reason, note })) {
    showReportStatus(t('report.offline'), true);
    return;
  }
  state.pendingReport = { chat: target.chat, timer: setTimeout(onReportLost, REPORT_ANSWER_MS) };
  showReportStatus(t('report.sending'), false);
  // Report and skip: the node does not end a reported chat by itself.
  if (target.current && state.phase === 'chatting' && state.chat === target.chat) next();
  renderReportControls();
}

/** Whether an `error` answers the pending report rather than anything else. */
function isReportError(message) {
  const pending = state.pendingReport;
  if (pending === null) return false;
  const text = typeof message.message === 'string' ? message.message : '';
  switch (message.code) {
    case 'unavailable':
    case 'not_in_chat':
      return true;
    case 'rate_limited':
      return /report/i.test(text);
    case 'stale_chat':
      return text.includes(pending.chat);
    case 'invalid_value':
      return text.startsWith('reason');
    case 'text_too_long':
      return text.startsWith('note');
    default:
      return false;
  }
}

function onReported() {
  const pending = state.pendingReport;
  if (pending !== null) {
    clearTimeout(pending.timer);
    state.pendingReport = null;
    state.lastReported = pending.chat;
    if (state.previous?.chat === pending.chat) withdrawPrevious();
  }
  showReportStatus(t('report.done'), false);
  renderReportControls();
  closeIfIdle();
}

function onReportError(message) {
  clearTimeout(state.pendingReport.timer);
  state.pendingReport = null;
  let text;
  switch (message.code) {
    case 'rate_limited':
      text = t('report.rate_limited');
      break;
    case 'unavailable':
      text = t('report.unavailable');
      break;
    case 'stale_chat':
    case 'not_in_chat':
      text = t('report.too_late');
      break;
    default:
      text = t('report.failed', { why: message.message || t('common.something_wrong') });
  }
  showReportStatus(text, true);
  // The previous stranger's button comes back if that chat can still be reported.
  renderReportControls();
  closeIfIdle();
}

function onReportLost() {
  state.pendingReport = null;
  showReportStatus(t('report.unconfirmed'), true);
  renderReportControls();
  closeIfIdle();
}

/**
 * Offers "Report the previous stranger" for the chat that just ended, for a minute. A chat
 * whose report is on its way is kept but not shown: if that report fails, the button
 * comes back to try again.
 */
function offerPrevious(chat) {
  withdrawPrevious();
  if (chat === null || chat === state.lastReported) return;
  state.previous = {
    chat,
    timer: setTimeout(() => {
      state.previous = null;
      renderReportControls();
      closeIfIdle();
    }, PREVIOUS_REPORT_MS),
  };
  renderReportControls();
}

function withdrawPrevious() {
  if (state.previous === null) return;
  clearTimeout(state.previous.timer);
  state.previous = null;
  if (ui.reportDialog.open && state.reportTarget?.current === false) ui.reportDialog.close();
  renderReportControls();
}

/** The notice about the last report; it stays until dismissed or replaced. */
function showReportStatus(text, isError) {
  ui.reportStatus.textContent = text;
  ui.reportStatus.classList.toggle('error', isError);
  renderReportControls();
}

function dismissReportStatus() {
  ui.reportStatus.textContent = '';
  renderReportControls();
}

function renderReportControls() {
  const pending = state.pendingReport !== null;
  const offer = state.previous !== null && !pending && state.phase !== 'banned';
  const hadFocus = document.activeElement === ui.reportPrevious;
  ui.reportPrevious.hidden = !offer;
  ui.reportStatusClose.hidden = pending || !ui.reportStatus.textContent;
  ui.reportBar.hidden = state.phase === 'banned' || (!offer && !ui.reportStatus.textContent);
  ui.report.disabled = state.phase !== 'chatting' || pending || state.spy?.role === 'spy';
  // The button went away under the keyboard: keep focus somewhere sensible.
  if (hadFocus && ui.reportPrevious.hidden) (ui.chat.hidden ? landing.start : ui.message).focus();
}

// ---- banned --------------------------------------------------------------------------

/** The node refused this user: say why and until when; the connection is not reopened. */
function onBanned(message) {
  if (ui.reportDialog.open) ui.reportDialog.close();
  withdrawPrevious();
  saveChat.disable();
  if (state.pendingReport !== null) clearTimeout(state.pendingReport.timer);
  state.pendingReport = null;
  state.resume = false;
  disarmEsc();
  endChat();
  hideBanner();
  for (const track of state.localStream?.getTracks() ?? []) track.stop();
  state.localStream = null;
  ui.localVideo.srcObject = null;

  const text = typeof message.message === 'string' ? message.message : '';
  const reason = text.replace(/^you are banned:\s*/i, '').trim();
  ui.bannedReason.textContent = reason ? t('banned.reason', { reason }) : '';
  ui.bannedReason.hidden = !reason;
  renderBanEnd(message.until);
  ui.bannedRef.textContent = message.ban ? t('banned.reference', { ban: message.ban }) : '';
  ui.bannedRef.hidden = !message.ban;

  setPhase('banned');
  renderReportControls();
  ui.landing.hidden = true;
  ui.chat.hidden = true;
  ui.banned.hidden = false;
  ui.bannedTitle.focus();
}

/** "You are banned until <date>." or "You are banned permanently." */
function renderBanEnd(until) {
  if (until === null) {
    ui.bannedUntil.textContent = t('banned.permanent');
    ui.bannedUntil.hidden = false;
    return;
  }
  if (typeof until !== 'number' || !Number.isFinite(until)) {
    ui.bannedUntil.hidden = true;
    return;
  }
  const date = new Date(until * 1000);
  const time = document.createElement('time');
  time.dateTime = date.toISOString();
  time.textContent = formatDate(date);
  // The sentence around the date, in the page's language: "You are banned until {date}."
  const [before, after = ''] = t('banned.until').split('{date}');
  ui.bannedUntil.replaceChildren(before, time, after);
  ui.bannedUntil.hidden = false;
}

function formatDate(date) {
  try {
    return new Intl.DateTimeFormat(LANG, { dateStyle: 'full', timeStyle: 'short' }).format(date);
  } catch {
    return date.toLocaleString();
  }
}

// ---- connection banner and users online ----------------------------------------------

function showBanner(retryIn) {
  clearInterval(state.bannerTimer);
  const until = Date.now() + retryIn;
  const render = () => {
    const seconds = Math.max(0, Math.ceil((until - Date.now()) / 1000));
    ui.bannerText.textContent = seconds > 0
      ? t('banner.reconnecting_in', { seconds: formatNumber(seconds) })
      : t('banner.reconnecting');
  };
  render();
  ui.banner.hidden = false;
  state.bannerTimer = setInterval(render, 1000);
}

function hideBanner() {
  clearInterval(state.bannerTimer);
  ui.banner.hidden = true;
}

async function refreshOnline() {
  if (document.hidden) return;
  try {
    // no-cache: shared caches may keep the figure a few seconds; this browser asks again.
    const response = await fetch('/api/stats', {
      headers: { accept: 'application/json' },
      cache: 'no-cache',
    });
    if (!response.ok) throw new Error(String(response.status));
    const stats = await response.json();
    ui.onlineText.textContent = t('online.count', { n: formatNumber(stats.online) });
    ui.online.hidden = false;
    // A node that cannot tell countries says so (`countries: false`): a country filter
    // would wait forever there.
    if (typeof stats.countries === 'boolean') landing.setCountriesKnown(stats.countries);
  } catch {
    ui.online.hidden = true;
  }
}

/** Lines that arrived while the tab was hidden, shown in its title until it is seen. */
let unread = 0;
const title = document.title;

function countUnread() {
  unread += 1;
  document.title = t('page.unread', { n: formatNumber(unread), title });
}

function onVisibilityChange() {
  if (!document.hidden) {
    unread = 0;
    document.title = title;
  }
  refreshOnline();
}

// ---- wiring --------------------------------------------------------------------------

landing.form.addEventListener('submit', onStart);
ui.composer.addEventListener('submit', onSend);
ui.message.addEventListener('input', onInput);
ui.message.addEventListener('keydown', onMessageKeyDown);
ui.next.addEventListener('click', next);
ui.stop.addEventListener('click', stop);
ui.report.addEventListener('click', () => openReport(true));
ui.reportPrevious.addEventListener('click', () => openReport(false));
ui.reportStatusClose.addEventListener('click', dismissReportStatus);
ui.reportDialog.addEventListener('close', onReportClosed);
ui.retry.addEventListener('click', () => connection.retryNow());
ui.toggleMic.addEventListener('click', () => toggleTrack('audio', ui.toggleMic, () => t('video.mute'), () => t('video.unmute_mic')));
ui.toggleCamera.addEventListener('click', () => toggleTrack('video', ui.toggleCamera, () => t('video.camera_off'), () => t('video.camera_on')));
wireSwitcher($('ui-language'));
document.addEventListener('keydown', onKeyDown);
document.addEventListener('visibilitychange', onVisibilityChange);
ui.unmute.addEventListener('click', () => {
  ui.remoteVideo.muted = false;
  ui.unmute.hidden = true;
});
connection.addEventListener('welcome', (event) => onWelcome(event.detail));
// The node's challenge is solved while the form is filled in: the connection opens at the
// first touch of the form.
for (const type of ['focusin', 'input', 'pointerdown']) {
  $('start-form').addEventListener(type, () => {
    if (state.phase === 'landing' && !connection.wanted) connection.open();
  }, { once: true });
}
connection.addEventListener('message', (event) => onMessage(event.detail));
connection.addEventListener('down', (event) => onConnectionDown(event.detail.retryIn));
connection.addEventListener('banned', (event) => onBanned(event.detail));
setPhase('landing');
refreshOnline();
setInterval(refreshOnline, STATS_EVERY_MS);

// A read-only view for debugging in the console (and for the browser tests).
window.tandem = Object.freeze({
  get phase() { return state.phase; },
  get chat() { return state.chat; },
  get pc() { return state.call?.pc ?? null; },
  get connected() { return connection.ready; },
  /** In spy mode, this side's role in the current chat ('spy' or 'discuss'), else null. */
  get spyRole() { return state.spy?.role ?? null; },
  /** Video stills sent to the node's automated moderation so far. */
  get stillsSent() { return stills.sent; },
  /** How long the last challenge took to solve, in ms (null: none solved yet). */
  get solvedIn() { return prover.took; },
  get previousChat() { return state.previous?.chat ?? null; },
  /** The last `log_saved` ({chat, url, delete_url}), or null. */
  get savedLog() { return saveChat.saved; },
  /** 'open', 'retrying' (a reconnect is scheduled) or 'closed' (none will be). */
  get link() {
    if (connection.ws !== null) return 'open';
    return connection.timer ? 'retrying' : 'closed';
  },
});
