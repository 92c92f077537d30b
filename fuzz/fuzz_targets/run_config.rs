//! The run configuration: TOML text, then `--set` overrides (one per line
//! after a NUL byte). A config that parses must print and parse back to
//! itself; an error names the file or the `--set`.
#![no_main]

use ift::config::RunConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, sets) = text.split_once('\0').unwrap_or((text, ""));
    let overrides: Vec<String> = sets.lines().map(str::to_string).collect();
    match RunConfig::parse(toml, "fuzz.toml", &overrides) {
        Ok(config) => {
            let again = RunConfig::parse(&config.to_toml(), "resolved.toml", &[])
                .expect("a resolved config parses back");
            assert_eq!(again, config);
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.starts_with("fuzz.toml") || m.starts_with("--set "), "{m}");
        }
    }
});
