//! Issue 13: a chat template is code from a downloaded file; a hostile one
//! must fail with an error, not hang the trainer or exhaust its memory.

mod common;

use std::time::{Duration, Instant};

use ift::data::{ChatTemplate, Message, Role};
use serde_json::json;

fn render(source: &str) -> (Result<String, String>, Duration) {
    let (_dir, tok) = common::model(json!({}), false);
    let template = ChatTemplate::new("hostile", source, &tok).unwrap();
    let chat = [
        Message::new(Role::User, "hi"),
        Message::new(Role::Assistant, "hello"),
    ];
    let start = Instant::now();
    let out = template.render(&chat, false).map_err(|e| e.to_string());
    (out, start.elapsed())
}

#[test]
fn an_endless_loop_runs_out_of_fuel() {
    let (out, took) = render(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}\
         {% endfor %}{% endfor %}{% endfor %}",
    );
    let err = out.unwrap_err();
    assert!(err.contains("fuel"), "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

#[test]
fn runaway_recursion_is_stopped() {
    let (out, took) = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    let err = out.unwrap_err();
    assert!(err.contains("recursion") || err.contains("fuel"), "{err}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
}

/// Found by `fuzz/fuzz_targets/chat_template.rs`: `{%}` made the
/// `{% generation %}` rewriting slice out of bounds (a panic); now it is the
/// template's syntax error.
#[test]
fn an_open_tag_closed_by_its_own_percent_is_a_syntax_error() {
    let (_dir, tok) = common::model(json!({}), false);
    for source in ["{% for m in messages %}{{ m.role }}: {%}", "{%}", "x{%"] {
        let err = ChatTemplate::new("fuzz", source, &tok).err();
        assert!(
            err.is_some_and(|e| e.to_string().contains("does not compile")),
            "{source}"
        );
    }
}

#[test]
fn a_real_template_renders_a_long_conversation_within_its_fuel() {
    // SmolLM2's own template, as its tokenizer_config.json has it.
    let (_dir, tok) = common::smollm2();
    let source = tok.chat_template(None).unwrap().to_string();
    let template = ChatTemplate::new("default", &source, &tok).unwrap();
    let chat: Vec<Message> = (0..2000)
        .map(|i| match i % 2 {
            0 => Message::new(Role::User, format!("question {i}")),
            _ => Message::new(Role::Assistant, format!("answer {i}")),
        })
        .collect();
    let text = template.render(&chat, false).unwrap();
    assert!(text.contains("answer 1999"));
}
