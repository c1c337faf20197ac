// The landing form: what the user wants (text or video, interests, language, countries),
// remembered between visits; and the camera, asked for before a video chat starts.

import { LANG, listFormat, t } from './i18n.js';
import {
  COUNTRIES, LANGUAGES, countryName, languageName, parseCountry, preferredLanguage,
} from './places.js';
import { TagInput } from './tags.js';

const PREFS_KEY = 'tandem.prefs';
/** The user's pass (an entitlement the site issued), kept in this browser only. */
const PASS_KEY = 'tandem.pass';
const GENDERS = ['f', 'm', 'x'];

export class Landing {
  /** @param {HTMLFormElement} form  the start form, with the ids of index.html */
  constructor(form) {
    this.form = form;
    const $ = (id) => form.querySelector(`#${id}`);
    this.lang = $('lang');
    this.adult = $('adult');
    this.error = $('start-error');
    this.start = $('start');
    this.question = $('question');
    this.autoReroll = $('auto-reroll');
    this.gender = $('gender');
    this.college = $('college');
    this.sameCollege = $('same-college');
    this.ui = {
      questionField: $('question-field'),
      styleVideoHint: $('style-video-hint'),
      interestsField: $('interests-field'),
      countriesField: $('countries-field'),
      countriesInput: $('countries-input'),
      countriesHint: $('countries-hint'),
      countriesUnknown: $('countries-unknown'),
      premium: $('premium'),
      passStatus: $('pass-status'),
      passEntry: $('pass-entry'),
      passInput: $('pass-input'),
      passUse: $('pass-use'),
      passRemove: $('pass-remove'),
      sameCollegeLabel: $('same-college-label'),
    };
    this.wants = [...form.querySelectorAll('input[name="want"]')];
    this.countriesKnown = true;
    this.interests = new TagInput($('interests'), {
      parse: (text) => {
        const tag = text.trim().toLowerCase();
        return tag && [...tag].length <= 40 ? tag : null;
      },
      onReject: (why, text) => this.showError(why === 'full'
        ? t('form.interests_full', { max: text })
        : t('form.interests_unknown', { text })),
    });
    this.countries = new TagInput($('countries'), {
      parse: parseCountry,
      label: countryName,
      max: 50,
      onReject: (why, text) => this.showError(why === 'full'
        ? t('form.countries_full', { max: text })
        : t('form.countries_unknown_name', { text })),
    });
    this.pass = null; // {token, claims}: the pass in use, if any
    this.offered = null; // a pass a link offered while another is in use
    this.passRefused = false;
    this.fillChoices();
    this.restore();
    this.takePassFromUrl();
    this.renderPass();
    this.renderStyle();
    this.adult.addEventListener('change', () => this.showError(''));
    form.addEventListener('change', (event) => {
      if (event.target.name === 'mode' || event.target.name === 'style') this.renderStyle();
    });
    this.ui.passUse.addEventListener('click', () => this.usePass(this.ui.passInput.value));
    this.ui.passInput.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        this.usePass(this.ui.passInput.value);
      }
    });
    this.ui.passRemove.addEventListener('click', () => this.usePass(''));
  }

  fillChoices() {
    const languages = LANGUAGES.map((code) => [code, languageName(code)])
      .sort((a, b) => a[1].localeCompare(b[1], LANG));
    for (const [code, name] of languages) this.lang.add(new Option(name, code));
    this.lang.value = preferredLanguage();
    const names = COUNTRIES.map(countryName).sort((a, b) => a.localeCompare(b, LANG));
    this.form.querySelector('#country-list').replaceChildren(...names.map((name) => new Option(name)));
  }

  /** `one`, `ask` (spy mode: ask a question and watch) or `discuss` (discuss questions). */
  get style() {
    if (this.form.elements.mode.value === 'video') return 'one';
    const style = this.form.elements.style.value;
    return style === 'ask' || style === 'discuss' ? style : 'one';
  }

  /** Questions are text only, and take no interests or filters: the form says so. */
  renderStyle() {
    const video = this.form.elements.mode.value === 'video';
    for (const radio of this.form.elements.style) radio.disabled = video && radio.value !== 'one';
    this.ui.styleVideoHint.hidden = !video;
    const style = this.style;
    const spy = style !== 'one';
    this.ui.questionField.hidden = style !== 'ask';
    this.ui.interestsField.hidden = spy;
    this.ui.countriesField.hidden = spy;
    this.ui.premium.hidden = spy;
  }

  /** The choices as `join` takes them (tags still being typed included). */
  read() {
    this.interests.commit();
    this.countries.commit();
    const grants = this.grants();
    const style = this.style;
    const wantGender = this.wants.filter((box) => box.checked && !box.disabled).map((box) => box.value);
    const college = this.college.checked && !this.college.disabled;
    return {
      mode: this.form.elements.mode.value === 'video' ? 'video' : 'text',
      style,
      question: this.question.value.trim(),
      lang: this.lang.value,
      interests: [...this.interests.tags],
      countries: [...this.countries.tags],
      countriesKnown: this.countriesKnown,
      autoReroll: this.autoReroll.checked,
      gender: GENDERS.includes(this.gender.value) ? this.gender.value : null,
      wantGender: grants.gender ? wantGender : [],
      college: grants.college && college,
      sameCollege: grants.college && college && this.sameCollege.checked,
      entitlement: this.pass?.token ?? null,
    };
  }

  /** Keeps the choices for the next visit (not the 18+ confirmation: that is asked each time). */
  save(prefs) {
    const kept = { ...prefs };
    delete kept.entitlement; // kept on its own, and removable
    try {
      localStorage.setItem(PREFS_KEY, JSON.stringify(kept));
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
    try {
      const token = localStorage.getItem(PASS_KEY);
      if (token) this.pass = { token, claims: readClaims(token) };
    } catch {
      // No storage: no pass to remember.
    }
    if (!saved || typeof saved !== 'object') return;
    if (saved.mode === 'video') this.form.querySelector('#mode-video').checked = true;
    if (saved.style === 'ask' || saved.style === 'discuss') {
      this.form.querySelector(`#style-${saved.style}`).checked = true;
    }
    if (typeof saved.question === 'string') this.question.value = saved.question.slice(0, 300);
    if (LANGUAGES.includes(saved.lang)) this.lang.value = saved.lang;
    if (Array.isArray(saved.interests)) {
      this.interests.set(saved.interests.filter((tag) => typeof tag === 'string').slice(0, 20));
    }
    if (Array.isArray(saved.countries)) {
      this.countries.set(saved.countries.filter((c) => COUNTRIES.includes(c)));
    }
    this.autoReroll.checked = saved.autoReroll === true;
    if (GENDERS.includes(saved.gender)) this.gender.value = saved.gender;
    if (Array.isArray(saved.wantGender)) {
      for (const box of this.wants) box.checked = saved.wantGender.includes(box.value);
    }
    this.college.checked = saved.college === true;
    this.sameCollege.checked = saved.sameCollege === true;
  }

  /** What the pass in use grants now: `{gender, college}`. */
  grants() {
    const claims = this.pass?.claims;
    const valid = claims && !this.passRefused && claims.exp * 1000 > Date.now();
    const features = valid && Array.isArray(claims.features) ? claims.features : [];
    return {
      gender: features.includes('gender_filter'),
      college: features.includes('college') && typeof claims.college === 'string',
    };
  }

  /**
   * A pass handed over in the address (`#pass=…`, from the site's own pages) is taken once.
   * It never silently replaces a pass this browser holds and can still use (a link anyone
   * can send would otherwise take it away): that one is kept, and the offered one waits in
   * the field for the user to choose it.
   */
  takePassFromUrl() {
    const match = /^#pass=([A-Za-z0-9._-]+)$/.exec(location.hash);
    if (!match) return;
    history.replaceState(null, '', location.pathname + location.search);
    const offered = match[1];
    if (offered === this.pass?.token) return;
    const held = this.grants();
    if (held.gender || held.college) {
      this.ui.premium.open = true;
      this.offered = offered;
      return;
    }
    this.usePass(offered, { open: true });
  }

  /** Uses `token` as the pass (an empty one removes it). */
  usePass(token, { open = false } = {}) {
    const text = String(token).trim();
    if (text && !readClaims(text)) {
      // Not a pass at all: the one held (if any) stays, and the field says why.
      this.ui.passStatus.textContent = t('premium.pass_unreadable');
      this.ui.passStatus.classList.add('error');
      return;
    }
    this.passRefused = false;
    this.pass = text ? { token: text, claims: readClaims(text) } : null;
    try {
      if (this.pass) localStorage.setItem(PASS_KEY, text);
      else localStorage.removeItem(PASS_KEY);
    } catch {
      // Not remembered: it still works on this page.
    }
    this.ui.passInput.value = '';
    this.offered = null;
    if (open) this.ui.premium.open = true;
    this.renderPass();
  }

  /** The node refused the pass (forged, expired, or for another site). */
  refusePass() {
    this.passRefused = true;
    this.ui.premium.open = true;
    this.renderPass();
  }

  renderPass() {
    const grants = this.grants();
    for (const box of this.wants) box.disabled = !grants.gender;
    this.college.disabled = !grants.college;
    this.sameCollege.disabled = !grants.college;
    const claims = this.pass?.claims;
    this.ui.sameCollegeLabel.textContent = grants.college
      ? t('premium.same_college_named', { college: claims.college })
      : t('premium.same_college');
    let status;
    if (!this.pass) {
      status = t('premium.no_pass');
    } else if (!claims) {
      status = t('premium.pass_unreadable');
    } else if (this.passRefused) {
      status = t('premium.pass_refused');
    } else if (claims.exp * 1000 <= Date.now()) {
      status = t('premium.pass_expired');
    } else {
      const features = [];
      if (grants.gender) features.push(t('premium.feature_gender'));
      if (grants.college) features.push(t('premium.feature_college', { college: claims.college }));
      status = features.length
        ? t('premium.pass_ok', { features: listFormat(features), until: formatDay(claims.exp) })
        : t('premium.pass_nothing');
    }
    if (this.offered) {
      // A link offered another pass: it waits in the field.
      status = `${status} ${t('premium.pass_offered')}`;
      this.ui.passInput.value = this.offered;
    }
    this.ui.passStatus.textContent = status;
    this.ui.passStatus.classList.toggle('error', Boolean(this.pass) && !(grants.gender || grants.college));
    this.ui.passRemove.hidden = !this.pass;
    this.ui.passEntry.hidden = Boolean(this.pass) && (grants.gender || grants.college)
      && !this.offered;
  }

  /** Whether this node can tell people's countries; if not, the country filter is off. */
  setCountriesKnown(known) {
    this.countriesKnown = known;
    this.ui.countriesUnknown.hidden = known;
    this.ui.countriesHint.hidden = !known;
    this.ui.countriesInput.disabled = !known;
    this.countries.root.classList.toggle('disabled', !known);
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  /** Shows that Start is busy (asking for the camera) or ready again. */
  busy(text) {
    this.start.disabled = Boolean(text);
    this.start.textContent = text || t('form.start');
  }
}

/** A pass's claims (`v1.<base64url JSON>.<signature>`): what it says it grants, unverified
 * (the node verifies it). Null when unreadable. */
function readClaims(token) {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== 'v1') return null;
  try {
    const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), '=')));
    return claims && typeof claims.exp === 'number' ? claims : null;
  } catch {
    return null;
  }
}

function formatDay(seconds) {
  try {
    return new Intl.DateTimeFormat(LANG, { dateStyle: 'long' }).format(new Date(seconds * 1000));
  } catch {
    return new Date(seconds * 1000).toDateString();
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
      return t('camera.blocked');
    case 'NotFoundError':
    case 'OverconstrainedError':
      return t('camera.none');
    case 'NotReadableError':
    case 'AbortError':
      return t('camera.busy');
    case 'InsecureContext':
      return t('camera.insecure');
    default:
      return t('camera.unsupported');
  }
}
