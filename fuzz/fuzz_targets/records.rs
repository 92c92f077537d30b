//! The record reader, every file syntax: any text gives records or an error
//! naming the file and line, never a panic.
#![no_main]

use std::path::Path;

use ift::data::{parse_records, DataFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for format in [
        DataFormat::Auto,
        DataFormat::JsonArray,
        DataFormat::JsonLines,
    ] {
        if let Err(e) = parse_records(text, Path::new("fuzz.jsonl"), format) {
            assert!(e.to_string().starts_with("fuzz.jsonl"), "{e}");
        }
    }
});
