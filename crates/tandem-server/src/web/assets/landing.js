// The landing form: what the user wants (text or video, interests, language, countries),
// remembered between visits; and the camera, asked for before a video chat starts.

import {
  COUNTRIES, LANGUAGES, countryName, languageName, parseCountry, preferredLanguage,
} from './places.js';
import { TagInput } from './tags.js';

const PREFS_KEY = 'tandem.prefs';

export class Landing {
  /** @param {HTMLFormElement} form  the start form, with the ids of index.html */
  constructor(form) {
    this.form = form;
    this.lang = form.querySelector('#lang');
    this.adult = form.querySelector('#adult');
    this.error = form.querySelector('#start-error');
    this.start = form.querySelector('#start');
    this.interests = new TagInput(form.querySelector('#interests'), {
      parse: (text) => {
        const tag = text.trim().toLowerCase();
        return tag && [...tag].length <= 40 ? tag : null;
      },
      onReject: (why) => this.showError(`Interests: ${why}.`),
    });
    this.countries = new TagInput(form.querySelector('#countries'), {
      parse: parseCountry,
      label: countryName,
      max: 50,
      onReject: (why) => this.showError(`Countries: ${why}. Pick one from the list.`),
    });
    this.fillChoices();
    this.restore();
    this.adult.addEventListener('change', () => this.showError(''));
  }

  fillChoices() {
    const languages = LANGUAGES.map((code) => [code, languageName(code)])
      .sort((a, b) => a[1].localeCompare(b[1]));
    for (const [code, name] of languages) this.lang.add(new Option(name, code));
    this.lang.value = preferredLanguage();
    const names = COUNTRIES.map(countryName).sort((a, b) => a.localeCompare(b));
    this.form.querySelector('#country-list').replaceChildren(...names.map((name) => new Option(name)));
  }

  /** The choices as `join` takes them (tags still being typed included). */
  read() {
    this.interests.commit();
    this.countries.commit();
    return {
      mode: this.form.elements.mode.value === 'video' ? 'video' : 'text',
      lang: this.lang.value,
      interests: [...this.interests.tags],
      countries: [...this.countries.tags],
    };
  }

  /** Keeps the choices for the next visit (not the 18+ confirmation: that is asked each time). */
  save(prefs) {
    try {
      localStorage.setItem(PREFS_KEY, JSON.stringify(prefs));
    } catch {
      // Private mode or storage full: remembering is a convenience.
    }
  }

  restore() {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(PREFS_KEY) ?? 'null');
    } catch {
      // Unreadable: start from the defaults.
    }
    if (!saved || typeof saved !== 'object') return;
    if (saved.mode === 'video') this.form.querySelector('#mode-video').checked = true;
    if (LANGUAGES.includes(saved.lang)) this.lang.value = saved.lang;
    if (Array.isArray(saved.interests)) {
      this.interests.set(saved.interests.filter((t) => typeof t === 'string').slice(0, 20));
    }
    if (Array.isArray(saved.countries)) {
      this.countries.set(saved.countries.filter((c) => COUNTRIES.includes(c)));
    }
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  /** Shows that Start is busy (asking for the camera) or ready again. */
  busy(text) {
    this.start.disabled = Boolean(text);
    this.start.textContent = text || 'Start chatting';
  }
}

/** Camera and microphone; a camera alone if there is no microphone. */
export async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    const error = new Error('no getUserMedia');
    error.name = window.isSecureContext ? 'NotSupportedError' : 'InsecureContext';
    throw error;
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  } catch (error) {
    if (error.name === 'NotFoundError') {
      return navigator.mediaDevices.getUserMedia({ video: true });
    }
    throw error;
  }
}

/** What went wrong with the camera, in words a user can act on. */
export function cameraErrorText(error) {
  switch (error?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera and microphone are blocked. Allow them for this site (the camera icon in the address bar), or choose Text.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera was found. Connect one, or choose Text.';
    case 'NotReadableError':
    case 'AbortError':
      return 'Your camera is busy in another app or tab. Close it there and try again.';
    case 'InsecureContext':
      return 'Video chat needs a secure (https) connection to this site.';
    default:
      return 'Your browser does not support video chat here. Choose Text, or try a current browser.';
  }
}
