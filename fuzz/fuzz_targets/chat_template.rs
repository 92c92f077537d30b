//! `tokenizer_config.json` and chat-template rendering. The first byte picks:
//! the rest as `tokenizer_config.json` (read beside a real tokenizer, its
//! template compiled and rendered), or the rest as a template source
//! rendered directly. A hostile template must fail, not hang or exhaust
//! memory: minijinja's fuel bounds every render.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ift::data::{ChatTemplate, Message, Role, TemplateOptions};
use ift::tokenizer::HfTokenizer;
use libfuzzer_sys::fuzz_target;

fn fixture() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/ift/tests/fixtures/models/llama_gqa"
    ))
}

/// A tokenizer directory whose `tokenizer_config.json` each input replaces.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ift-fuzz-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(fixture().join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
        dir
    })
}

fn tokenizer() -> &'static HfTokenizer {
    static TOK: OnceLock<HfTokenizer> = OnceLock::new();
    TOK.get_or_init(|| HfTokenizer::from_dir(&fixture()).unwrap())
}

fn render(template: &ChatTemplate) {
    let chat = [
        Message::new(Role::System, "Be brief."),
        Message::new(Role::User, "Name a color."),
        Message::new(Role::Assistant, "Blue."),
    ];
    let _ = template.render(&chat, false);
    let _ = template.render(&chat[..2], true);
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        std::fs::write(dir().join("tokenizer_config.json"), rest).unwrap();
        let Ok(tok) = HfTokenizer::from_dir(dir()) else {
            return;
        };
        if let Ok(Some(t)) = ChatTemplate::for_tokenizer(&tok, &TemplateOptions::default()) {
            render(&t);
        }
    } else if let Ok(source) = std::str::from_utf8(rest) {
        if let Ok(t) = ChatTemplate::new("fuzz", source, tokenizer()) {
            render(&t);
        }
    }
});
