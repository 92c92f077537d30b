//! The Jinja features chat templates rely on behave as in transformers.

mod common;

use common::smollm2;
use ift::data::{mask_conversation, ChatTemplate, DataError, Location, Message, Role};

fn render(
    source: &str,
    messages: &[Message],
    generation: bool,
) -> Result<String, minijinja::Error> {
    let (_d, tok) = smollm2();
    ChatTemplate::new("t", source, &tok)
        .unwrap()
        .render(messages, generation)
}

fn chat() -> Vec<Message> {
    vec![
        Message::new(Role::User, "  hi <b> ☕ "),
        Message::new(Role::Assistant, "yo"),
    ]
}

#[test]
fn special_tokens_tools_and_python_methods() {
    let src = "{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{% if tools is not none %}T{% endif %}\
               {{ messages[0].content.strip() }}|{{ messages[1]['content'].upper() }}|\
               {{ messages[0].role.startswith('us') }}|{{ add_generation_prompt }}";
    let out = render(src, &chat(), true).unwrap();
    assert_eq!(out, "<|im_start|>|<|im_end|>|True|hi <b> ☕|YO|True|True");
}

#[test]
fn tojson_is_pythons_json_dumps() {
    // python3 -c 'import json; print(json.dumps({"role": "user", "content": "  hi <b> ☕ "}, ensure_ascii=False))'
    let out = render("{{ messages[0] | tojson }}", &chat(), false).unwrap();
    assert_eq!(out, r#"{"role": "user", "content": "  hi <b> ☕ "}"#);
    let out = render("{{ messages[1] | tojson(indent=2) }}", &chat(), false).unwrap();
    assert_eq!(
        out,
        "{\n  \"role\": \"assistant\",\n  \"content\": \"yo\"\n}"
    );
}

#[test]
fn trim_and_lstrip_blocks_and_trailing_newline_as_jinja2() {
    // jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(src).render(...)
    let src = "{% for m in messages %}\n    {% if m.role == 'user' %}\nU:{{ m.content | trim }}\n    {% endif %}\n{% endfor %}\n";
    assert_eq!(render(src, &chat(), false).unwrap(), "U:hi <b> ☕\n");
}

#[test]
fn raise_exception_is_an_error_naming_the_record() {
    let (_d, tok) = smollm2();
    let src = "{% if messages[0].role != 'system' %}{{ raise_exception('System message required') }}{% endif %}";
    let t = ChatTemplate::new("strict", src, &tok).unwrap();
    let loc = Location {
        path: "chat.jsonl".into(),
        line: 7,
        index: 6,
    };
    let err = mask_conversation(&chat(), 0, &t, &tok, false, &loc).unwrap_err();
    assert!(matches!(err, DataError::Render { .. }));
    let msg = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(
        msg.contains("chat.jsonl:7") && msg.contains("System message required"),
        "{msg}"
    );
}

#[test]
fn strftime_now_and_generation_blocks() {
    let out = render("{{ strftime_now('%Y') }}", &chat(), false).unwrap();
    assert!(out.len() == 4 && out.starts_with("20"), "{out}");
    let src = "{% for m in messages %}{%- if m.role == 'assistant' %}{% generation -%}\n A:{{ m.content }}{%- endgeneration %}{% endif %}{% endfor %}";
    assert_eq!(render(src, &chat(), false).unwrap(), "A:yo");
}

#[test]
fn syntax_errors_name_the_template() {
    let (_d, tok) = smollm2();
    let err = ChatTemplate::new("broken", "{% for %}", &tok).unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
}
