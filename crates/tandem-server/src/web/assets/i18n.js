// The page's strings in the user's language. The node renders the page in that language
// and puts every string the scripts need in <script type="application/json" id="strings">
// (from src/web/locales/<code>.json); `t` reads them, filling in `{name}` placeholders.

const strings = (() => {
  try {
    return JSON.parse(document.getElementById('strings')?.textContent ?? '{}');
  } catch {
    return {};
  }
})();

/** The page's language (`es`), as the node chose it. */
export const LANG = document.documentElement.lang || 'en';

/** The text of `key`, with `{name}` replaced by `vars.name`. */
export function t(key, vars = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{([a-z0-9_]+)\}/gi, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** A number in the page's language. */
export function formatNumber(n) {
  try {
    return new Intl.NumberFormat(LANG).format(n);
  } catch {
    return String(n);
  }
}

/** "a, b and c" in the page's language. */
export function listFormat(items) {
  try {
    return new Intl.ListFormat(LANG, { type: 'conjunction' }).format(items);
  } catch {
    return items.join(', ');
  }
}

/** The language switcher: remembers the choice in a cookie and reloads in it. */
export function wireSwitcher(select) {
  if (!select) return;
  select.addEventListener('change', () => {
    const code = select.value;
    const secure = location.protocol === 'https:' ? '; Secure' : '';
    document.cookie = `tandem_lang=${encodeURIComponent(code)}; Path=/; Max-Age=31536000; SameSite=Lax${secure}`;
    const url = new URL(location.href);
    url.searchParams.delete('lang');
    location.replace(url.href);
  });
}

/**
 * A count in words: `base.none` for 0, else the form `Intl.PluralRules` picks for the page's
 * language (`base.one`, `base.few`, …), falling back to `base.other`. `{n}` is the number.
 */
export function plural(base, n) {
  if (n === 0) return t(`${base}.none`, { n: formatNumber(n) });
  let form = 'other';
  try {
    form = new Intl.PluralRules(LANG).select(n);
  } catch {
    // An old browser: `other` reads well enough.
  }
  const key = `${base}.${form}` in strings ? `${base}.${form}` : `${base}.other`;
  return t(key, { n: formatNumber(n) });
}
