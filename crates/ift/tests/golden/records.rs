//! The tiny records (`fixtures/records/tiny_*.jsonl`) written where a run
//! reads them, as the kind each objective trains on.

use std::path::{Path, PathBuf};

use ift::objective::ObjectiveKind;

pub const CHATS: &str = include_str!("../fixtures/records/tiny_chats.jsonl");
pub const PAIRS: &str = include_str!("../fixtures/records/tiny_pairs.jsonl");
pub const KTO: &str = include_str!("../fixtures/records/tiny_kto.jsonl");

/// Writes the records `kind` trains on into `dir` and returns their path:
/// chats for SFT and IFT, labelled records for KTO, pairs otherwise.
pub fn write_records(dir: &Path, kind: ObjectiveKind) -> PathBuf {
    let (name, text) = match kind {
        ObjectiveKind::Sft | ObjectiveKind::Ift => ("chats.jsonl", CHATS),
        ObjectiveKind::Kto => ("kto.jsonl", KTO),
        _ => ("pairs.jsonl", PAIRS),
    };
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
