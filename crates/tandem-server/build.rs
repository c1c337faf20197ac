//! Embeds every translation of the chat page found in `src/web/locales/` (one `<code>.json`
//! per language), so that a contributor adds a language by adding its file: no code names
//! the list.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

fn main() {
    let dir =
        Path::new(&env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("src/web/locales");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut codes: Vec<String> = fs::read_dir(&dir)
        .expect("src/web/locales exists")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let code = name.strip_suffix(".json")?;
            let valid = !code.is_empty()
                && code.len() <= 8
                && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            if !valid {
                // Named so that no request could pick it: say so rather than drop it quietly.
                println!(
                    "cargo:warning=src/web/locales/{name} is not embedded: name a translation \
                     by its lower-case language code, e.g. `pt.json` or `pt-br.json`"
                );
            }
            valid.then(|| code.to_owned())
        })
        .collect();
    codes.sort();
    let mut out = String::from("/// Every translation: its code and the JSON text of its file.\n");
    out.push_str("pub const LOCALES: &[(&str, &str)] = &[\n");
    for code in &codes {
        let path = dir.join(format!("{code}.json"));
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            out,
            "    ({code:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let target = Path::new(&env::var("OUT_DIR").expect("cargo sets it")).join("locales.rs");
    fs::write(target, out).expect("OUT_DIR is writable");
}
