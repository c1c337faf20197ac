//! The chat page in the user's language. Each language is a data file,
//! `src/web/locales/<code>.json`, embedded at build time: a flat map from a string's key to
//! its text, plus `@name` (the language's own name, for the switcher) and `@dir` (`ltr` or
//! `rtl`). English (`en.json`) is the reference every other file must match key for key.
//!
//! The page's template names strings as `{{t:key}}` (escaped as HTML; keys ending in `_html`
//! may hold inline markup such as `<strong>`), and its scripts get the whole map as JSON in
//! `<script type="application/json" id="strings">`, which `i18n.js` reads. Texts the scripts
//! fill in take `{name}` placeholders.
//!
//! The language is, in order: `?lang=`, the `tandem_lang` cookie the switcher sets, the best
//! match of `Accept-Language`, English.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::HttpRequest;

use super::escape;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/locales.rs"));
}

/// Every locale file as embedded: its code and JSON text.
pub const SOURCES: &[(&str, &str)] = embedded::LOCALES;

/// The cookie the page's language switcher sets.
pub const LANG_COOKIE: &str = "tandem_lang";

/// The reference language, and the fallback for anything missing elsewhere.
pub const DEFAULT: &str = "en";

/// One language of the page.
#[derive(Debug)]
pub struct Locale {
    /// Its code, as in the file name (`es`, `pt`, `ar`).
    pub code: &'static str,
    /// Its own name (`Español`).
    pub name: String,
    /// `ltr` or `rtl`.
    pub dir: &'static str,
    /// Every string, English filling any gap.
    pub strings: BTreeMap<String, String>,
}

/// Why a locale file is not usable.
#[derive(Debug, thiserror::Error)]
#[error("locales/{code}.json: {problem}")]
pub struct LocaleError {
    pub code: String,
    pub problem: String,
}

/// Every language, English first, then by code.
pub fn locales() -> &'static [Locale] {
    static LOCALES: OnceLock<Vec<Locale>> = OnceLock::new();
    LOCALES.get_or_init(|| {
        // The files are part of the build and checked by the tests: one that does not parse
        // here is a build that must not ship, so it is reported loudly and skipped.
        let parsed: Vec<(&'static str, BTreeMap<String, String>)> = embedded::LOCALES
            .iter()
            .filter_map(|(code, text)| match parse(code, text) {
                Ok(map) => Some((*code, map)),
                Err(error) => {
                    tracing::error!(%error, "a translation of the page is broken; it is not offered");
                    None
                }
            })
            .collect();
        let english = parsed
            .iter()
            .find(|(code, _)| *code == DEFAULT)
            .map(|(_, map)| map.clone())
            .unwrap_or_default();
        let mut out: Vec<Locale> = parsed
            .into_iter()
            .map(|(code, map)| {
                let name = map.get("@name").cloned().unwrap_or_else(|| code.to_owned());
                let dir = if map.get("@dir").map(String::as_str) == Some("rtl") {
                    "rtl"
                } else {
                    "ltr"
                };
                let mut strings = english.clone();
                strings.extend(map);
                Locale {
                    code,
                    name,
                    dir,
                    strings,
                }
            })
            .collect();
        out.sort_by_key(|l| (l.code != DEFAULT, l.code));
        out
    })
}

/// Parses one file: a JSON object of strings.
pub fn parse(code: &str, text: &str) -> Result<BTreeMap<String, String>, LocaleError> {
    serde_json::from_str(text).map_err(|error| LocaleError {
        code: code.to_owned(),
        problem: format!("not a JSON object of strings: {error}"),
    })
}

/// The locale with this code, if the page has it.
pub fn find(code: &str) -> Option<&'static Locale> {
    locales().iter().find(|l| l.code == code)
}

/// The language to answer `req` in (see the module's documentation), as an index into
/// [`locales`].
pub fn pick(req: &HttpRequest) -> usize {
    let all = locales();
    let index = |code: &str| {
        let code = code.trim().to_ascii_lowercase();
        all.iter().position(|l| l.code == code)
    };
    let from_query = req.query_string().split('&').find_map(|pair| {
        let value = pair.strip_prefix("lang=")?;
        index(value)
    });
    let from_cookie = || {
        req.headers()
            .get_all(header::COOKIE)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == LANG_COOKIE)
            .and_then(|(_, value)| index(value))
    };
    let from_header = || {
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| best_match(v, all))
    };
    from_query
        .or_else(from_cookie)
        .or_else(from_header)
        .unwrap_or(0)
}

/// The best of `all` for an `Accept-Language` value: the highest `q` whose primary subtag
/// (or exact tag) the page has; the first listed wins ties.
pub fn best_match(accept: &str, all: &[Locale]) -> Option<usize> {
    let mut best: Option<(f32, usize)> = None;
    for part in accept.split(',').take(32) {
        let mut pieces = part.split(';');
        let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        // The weight, 1 when absent; an entry whose weight does not parse is skipped.
        let q = match pieces.find_map(|p| {
            let p = p.trim();
            (p.len() >= 2 && p[..2].eq_ignore_ascii_case("q=")).then(|| &p[2..])
        }) {
            None => 1.0,
            Some(q) => match q.trim().parse::<f32>() {
                Ok(q) if q.is_finite() => q.min(1.0),
                _ => continue,
            },
        };
        // `q=0` is "not this one".
        if q <= 0.0 || tag.is_empty() || tag == "*" {
            continue;
        }
        let primary = tag.split('-').next().unwrap_or("");
        let found = all
            .iter()
            .position(|l| l.code == tag)
            .or_else(|| all.iter().position(|l| l.code == primary));
        if let Some(found) = found {
            if best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, found));
            }
        }
    }
    best.map(|(_, index)| index)
}

/// `template` in `locale`: `{{t:key}}`, `{{lang}}`, `{{dir}}`, `{{languages}}` (the
/// switcher's options) and `{{strings}}` (the map as JSON for the scripts) filled in.
pub fn render(template: &str, locale: &Locale, all: &[Locale]) -> String {
    let mut out = String::with_capacity(template.len() + 4096);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = &after[..end];
        match name {
            "lang" => out.push_str(locale.code),
            "dir" => out.push_str(locale.dir),
            "strings" => out.push_str(&script_json(&locale.strings)),
            "languages" => {
                for other in all {
                    let selected = if other.code == locale.code {
                        " selected"
                    } else {
                        ""
                    };
                    out.push_str(&format!(
                        "<option value=\"{code}\" lang=\"{code}\"{selected}>{name}</option>",
                        code = other.code,
                        name = escape(&other.name),
                    ));
                }
            }
            _ => match name.strip_prefix("t:") {
                Some(key) => {
                    let text = locale.strings.get(key).map(String::as_str).unwrap_or(key);
                    if key.ends_with("_html") {
                        out.push_str(text);
                    } else {
                        out.push_str(&escape(text));
                    }
                }
                // Not ours (`{{assets}}` is filled in later): kept as it is.
                None => {
                    out.push_str("{{");
                    out.push_str(name);
                    out.push_str("}}");
                }
            },
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The map as JSON that is safe inside `<script type="application/json">`: no `<` that
/// could close the element. Markup strings are the template's alone, so they stay out.
fn script_json(strings: &BTreeMap<String, String>) -> String {
    let scripts: BTreeMap<&str, &str> = strings
        .iter()
        .filter(|(k, _)| !k.starts_with('@') && !k.ends_with("_html"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    serde_json::to_string(&scripts)
        .unwrap_or_else(|_| "{}".to_owned())
        .replace('<', "\\u003c")
}

/// The `{name}` placeholders of a text, sorted.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end)
                if after[..end]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                out.push(&after[..end]);
                rest = &after[end + 1..];
            }
            _ => rest = after,
        }
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> Vec<(&'static str, BTreeMap<String, String>)> {
        embedded::LOCALES
            .iter()
            .map(|(code, text)| (*code, parse(code, text).unwrap()))
            .collect()
    }

    #[test]
    fn the_languages_users_pick_most_are_there() {
        for code in ["en", "es", "pt", "fr", "de", "ru", "tr", "ar", "hi", "id"] {
            assert!(find(code).is_some(), "no translation for {code}");
        }
        assert_eq!(find("ar").unwrap().dir, "rtl");
        assert_eq!(find("en").unwrap().dir, "ltr");
        assert_eq!(locales()[0].code, "en");
    }

    /// Every file parses and has exactly English's keys, each with English's placeholders
    /// and markup, and no empty text: a translation never falls back silently.
    #[test]
    fn every_translation_is_complete() {
        let all = raw();
        let english = &all.iter().find(|(c, _)| *c == DEFAULT).unwrap().1;
        for (code, map) in &all {
            assert!(map.contains_key("@name"), "{code}: no @name");
            assert!(
                matches!(map.get("@dir").map(String::as_str), Some("ltr" | "rtl")),
                "{code}: @dir must be ltr or rtl"
            );
            for (key, text) in english {
                let Some(theirs) = map.get(key) else {
                    panic!("{code}: missing {key}");
                };
                assert!(!theirs.trim().is_empty(), "{code}: {key} is empty");
                if key.starts_with('@') {
                    continue;
                }
                assert_eq!(
                    placeholders(theirs),
                    placeholders(text),
                    "{code}: {key} must use the placeholders of English"
                );
                // The same tags with the same attributes, in any order: a translation
                // changes words, never markup (no other link, no new element).
                let tags = |t: &str| {
                    let mut tags: Vec<String> = t
                        .split('<')
                        .skip(1)
                        .map(|rest| rest.split('>').next().unwrap_or(rest).to_owned())
                        .collect();
                    tags.sort();
                    tags
                };
                assert_eq!(tags(theirs), tags(text), "{code}: {key} markup differs");
            }
            for key in map.keys() {
                // A language with more plural forms than English adds them (`….few`).
                let extra_form = ["zero", "two", "few", "many"].iter().any(|form| {
                    key.strip_suffix(form)
                        .and_then(|base| base.strip_suffix('.'))
                        .is_some_and(|base| english.contains_key(&format!("{base}.other")))
                });
                assert!(
                    english.contains_key(key) || extra_form,
                    "{code}: {key} is not a key of en.json"
                );
            }
        }
    }

    /// Every `{{t:key}}` of the page and every `t('key')` of its scripts names a string of
    /// English, and every string of English is used somewhere.
    #[test]
    fn the_page_uses_exactly_the_strings_english_has() {
        let english = &find(DEFAULT).unwrap().strings;
        let mut used = std::collections::BTreeSet::new();
        let page = super::super::assets::PAGES[0];
        for piece in page.split("{{t:").skip(1) {
            used.insert(piece.split("}}").next().unwrap().to_owned());
        }
        let key = regex::Regex::new(r#"\bt\(\s*'([a-z0-9_.]+)'"#).unwrap();
        let plural = regex::Regex::new(r#"\bplural\(\s*'([a-z0-9_.]+)'"#).unwrap();
        for asset in super::super::assets::ASSETS {
            if asset.audience != super::super::Audience::Public || !asset.name.ends_with(".js") {
                continue;
            }
            let text = std::str::from_utf8(asset.body).unwrap();
            for found in key.captures_iter(text) {
                used.insert(found[1].to_owned());
            }
            for found in plural.captures_iter(text) {
                for form in ["none", "one", "other"] {
                    used.insert(format!("{}.{form}", &found[1]));
                }
            }
        }
        for key in &used {
            assert!(
                english.contains_key(key),
                "the page uses {key}, which en.json lacks"
            );
        }
        for key in english.keys().filter(|k| !k.starts_with('@')) {
            assert!(used.contains(key), "en.json has {key}, which nothing uses");
        }
    }

    fn all_for_tests() -> Vec<Locale> {
        ["en", "es", "pt", "ar"]
            .iter()
            .map(|code| Locale {
                code,
                name: code.to_string(),
                dir: "ltr",
                strings: BTreeMap::new(),
            })
            .collect()
    }

    #[test]
    fn accept_language_picks_the_best_offered() {
        let all = all_for_tests();
        assert_eq!(best_match("es-MX,es;q=0.9,en;q=0.8", &all), Some(1));
        assert_eq!(best_match("de-DE, pt-BR;q=0.7, en;q=0.3", &all), Some(2));
        assert_eq!(best_match("en;q=0.2, ar;q=0.9", &all), Some(3));
        assert_eq!(best_match("de, fr", &all), None);
        assert_eq!(best_match("*;q=1, es;q=0", &all), None);
        assert_eq!(
            best_match("es;q=abc, pt;q=0.1", &all),
            Some(2),
            "a bad weight is no weight"
        );
        assert_eq!(best_match("pt;Q=0.2, ar;q=0.3", &all), Some(3), "Q= is q=");
        assert_eq!(best_match("pt;q=7, ar", &all), Some(2), "weights stop at 1");
        assert_eq!(best_match("", &all), None);
    }

    #[test]
    fn render_fills_in_and_escapes() {
        let mut strings = BTreeMap::new();
        strings.insert("a".to_owned(), "<b>&\"x\"".to_owned());
        strings.insert("b_html".to_owned(), "I am <strong>18</strong>".to_owned());
        strings.insert("c".to_owned(), "</script><script>".to_owned());
        let locale = Locale {
            code: "xx",
            name: "X & Y".to_owned(),
            dir: "rtl",
            strings,
        };
        let all = vec![locale];
        let html = render(
            "<html lang=\"{{lang}}\" dir=\"{{dir}}\">{{t:a}}|{{t:b_html}}|{{assets}}|{{t:nope}}\
             <select>{{languages}}</select><script type=\"application/json\">{{strings}}</script>",
            &all[0],
            &all,
        );
        assert!(html.starts_with("<html lang=\"xx\" dir=\"rtl\">&lt;b&gt;&amp;&quot;x&quot;|"));
        assert!(html.contains("|I am <strong>18</strong>|{{assets}}|nope"));
        assert!(html.contains("<option value=\"xx\" lang=\"xx\" selected>X &amp; Y</option>"));
        assert!(!html.contains("</script><script>"));
        assert!(html.contains("\\u003c/script>"));
    }

    #[test]
    fn placeholders_are_read() {
        assert_eq!(placeholders("Hi {name}, {n} new {"), vec!["n", "name"]);
        assert!(placeholders("no {braces here}").is_empty());
    }
}
