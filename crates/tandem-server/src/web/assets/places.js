// Languages and countries a user can choose, named in the user's own language by the
// browser (Intl.DisplayNames), so the page carries codes, not translations.

import { LANG } from './i18n.js';

/** Languages offered for matching (BCP 47 primary subtags, as `join.lang` takes them). */
export const LANGUAGES = [
  'en', 'es', 'pt', 'fr', 'de', 'it', 'nl', 'pl', 'ru', 'uk', 'tr', 'ar', 'fa', 'he',
  'hi', 'bn', 'ur', 'id', 'ms', 'tl', 'vi', 'th', 'ja', 'ko', 'zh', 'sv', 'no', 'da',
  'fi', 'el', 'cs', 'sk', 'ro', 'hu', 'bg', 'sr', 'hr',
];

/** ISO 3166-1 alpha-2 codes (the server refuses `ZZ`, "unknown"). */
export const COUNTRIES = (
  'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ ' +
  'BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM ' +
  'DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS ' +
  'GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN ' +
  'KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ ' +
  'MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM ' +
  'PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV ' +
  'SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI ' +
  'VN VU WF WS YE YT ZA ZM ZW'
).split(' ');

const browser = navigator.languages?.length ? navigator.languages : [navigator.language || 'en'];
/** Names are given in the page's language; the browser's languages rank the default choice. */
const locale = [LANG, ...browser];

function displayNames(type) {
  try {
    return new Intl.DisplayNames(locale, { type, fallback: 'code' });
  } catch {
    return { of: (code) => code };
  }
}

const languageNames = displayNames('language');
const regionNames = displayNames('region');

/** The name of a language code in the user's language (`de` → "German"). */
export function languageName(code) {
  return languageNames.of(code) ?? code;
}

/** The name of a country code in the user's language (`DE` → "Germany"). */
export function countryName(code) {
  return regionNames.of(code) ?? code;
}

/**
 * The language to chat in by default: the page's, when the user reads it in a language other
 * than English (chosen, or the browser's); else the browser's preferred one if offered (a
 * language the page has no translation for); else English.
 */
export function preferredLanguage() {
  if (LANG !== 'en' && LANGUAGES.includes(LANG)) return LANG;
  for (const tag of browser) {
    const primary = String(tag).split('-')[0].toLowerCase();
    if (LANGUAGES.includes(primary)) return primary;
  }
  return 'en';
}

/**
 * The country code a user typed: a code (`de`), or a country's name in their language,
 * matched without case or accents. `null` if nothing matches.
 */
export function parseCountry(text) {
  const wanted = fold(text);
  if (!wanted) return null;
  const upper = wanted.toUpperCase();
  if (COUNTRIES.includes(upper)) return upper;
  return COUNTRIES.find((code) => fold(countryName(code)) === wanted) ?? null;
}

function fold(text) {
  return String(text).normalize('NFD').replace(/\p{M}/gu, '').trim().toLowerCase();
}
