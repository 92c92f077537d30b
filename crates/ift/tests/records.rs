//! Every record format parses, from a small fixture and from its real file under
//! `../shared/data/` (a missing file fails, naming it); malformed input is an error naming
//! file, line and field.

use std::path::{Path, PathBuf};

use ift::data::{
    load_records, parse_records, DataError, DataFormat, Message, RecordBody, RecordFormat, Role,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/records")
        .join(name)
}

fn shared(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/llamafactory")
        .join(name);
    assert!(
        p.is_file(),
        "{} is missing: this test needs the project's shared data folder (../shared beside the repository)",
        p.display()
    );
    p
}

fn formats(path: &Path) -> Vec<RecordFormat> {
    load_records(path, DataFormat::Auto)
        .unwrap()
        .iter()
        .map(|r| r.format)
        .collect()
}

#[test]
fn small_fixtures_parse_in_every_format() {
    use RecordFormat::*;
    assert_eq!(formats(&fixture("chat.jsonl")), [Chat, Chat]);
    assert_eq!(
        formats(&fixture("prompt_completion.jsonl")),
        [PromptCompletion, PromptCompletion]
    );
    assert_eq!(formats(&fixture("alpaca.json")), [Alpaca, Alpaca]);
    assert_eq!(formats(&fixture("sharegpt.jsonl")), [ShareGpt]);
    assert_eq!(
        formats(&fixture("preference.jsonl")),
        [Preference, Preference]
    );
    assert_eq!(
        formats(&fixture("sharegpt_preference.json")),
        [ShareGptPreference]
    );
    assert_eq!(formats(&fixture("kto.jsonl")), [Unpaired, Unpaired]);
    assert_eq!(formats(&fixture("text.jsonl")), [Text]);
}

#[test]
fn records_keep_lines_and_content() {
    let chat = load_records(&fixture("chat.jsonl"), DataFormat::JsonLines).unwrap();
    assert_eq!(
        (chat[1].location.line, chat[1].location.index),
        (3, 1),
        "blank line 2 is skipped"
    );
    let alpaca = load_records(&fixture("alpaca.json"), DataFormat::JsonArray).unwrap();
    assert_eq!(alpaca[1].location.line, 3);
    let RecordBody::Conversation {
        messages,
        conversational: true,
    } = &alpaca[0].body
    else {
        panic!()
    };
    assert_eq!(
        messages[0],
        Message::new(Role::User, "Add the numbers.\n2 and 3")
    );
    let RecordBody::Conversation { messages, .. } = &alpaca[1].body else {
        panic!()
    };
    let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::User,
            Role::Assistant
        ]
    );

    let pc = load_records(&fixture("prompt_completion.jsonl"), DataFormat::Auto).unwrap();
    assert!(matches!(
        pc[0].body,
        RecordBody::Conversation {
            conversational: false,
            ..
        }
    ));
    assert!(matches!(
        pc[1].body,
        RecordBody::Conversation {
            conversational: true,
            ..
        }
    ));
    let kto = load_records(&fixture("kto.jsonl"), DataFormat::Auto).unwrap();
    let RecordBody::Unpaired {
        prompt,
        completion,
        label: true,
        ..
    } = &kto[0].body
    else {
        panic!()
    };
    assert_eq!((prompt.len(), completion[0].content.as_str()), (1, "4"));
    let sg = load_records(&fixture("sharegpt.jsonl"), DataFormat::Auto).unwrap();
    let RecordBody::Conversation { messages, .. } = &sg[0].body else {
        panic!()
    };
    assert_eq!(
        messages[0],
        Message::new(Role::System, "Answer in one word.")
    );
}

#[test]
fn real_llamafactory_files_parse() {
    let cases = [
        ("alpaca_en_demo.json", 999, RecordFormat::Alpaca),
        ("identity.json", 91, RecordFormat::Alpaca),
        ("dpo_en_demo.json", 300, RecordFormat::ShareGptPreference),
        ("kto_en_demo.json", 300, RecordFormat::Unpaired),
    ];
    for (name, rows, format) in cases {
        let path = shared(name);
        let records = load_records(&path, DataFormat::Auto).unwrap();
        assert_eq!(records.len(), rows, "{name}");
        assert!(records.iter().all(|r| r.format == format), "{name}");
        // Lines grow with the index and the first element starts on line 2 (after `[`).
        assert_eq!(records[0].location.line, 2, "{name}");
        assert!(
            records
                .windows(2)
                .all(|w| w[0].location.line < w[1].location.line),
            "{name}"
        );
    }
}

/// Parses `text` as the file `bad.jsonl` / `bad.json` and returns the error's message.
fn error(text: &str, format: DataFormat) -> (DataError, String) {
    let err = parse_records(text, Path::new("bad.jsonl"), format).unwrap_err();
    let msg = err.to_string();
    (err, msg)
}

#[test]
fn malformed_lines_name_file_line_and_field() {
    let good = r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"#;
    let cases = [
        ("{\"messages\": [", "bad.jsonl:3: invalid JSON"),
        (
            r#"{"instruction": "x", "input": ""}"#,
            "bad.jsonl:3 (record 2): field `output`: missing",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "yo"}]}"#,
            "bad.jsonl:3 (record 2): field `messages[1].role`: unknown role \"bot\"",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]}"#,
            "bad.jsonl:3 (record 2): field `messages[1].content`: empty answer",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            "field `messages`: no assistant answer",
        ),
        (
            r#"{"messages": [{"role": "user", "content": 3}]}"#,
            "field `messages[0]`: invalid type",
        ),
        (
            r#"{"conversations": [{"from": "robot", "value": "x"}]}"#,
            "field `conversations[0].from`",
        ),
        (
            r#"{"prompt": "a", "chosen": "b", "rejected": ""}"#,
            "field `rejected[0].content`: empty answer",
        ),
        (
            r#"{"messages": [{"role": "user", "content": "a"}], "label": true}"#,
            "field `messages`: the last",
        ),
        (r#"{"text": ""}"#, "field `text`: empty text"),
        (
            r#"{"foo": 1}"#,
            "bad.jsonl:3 (record 2): unrecognised record",
        ),
        ("[1]", "a record must be a JSON object"),
    ];
    for (bad, expected) in cases {
        let text = format!("{good}\n{good}\n{bad}\n{good}\n");
        let (_, msg) = error(&text, DataFormat::JsonLines);
        assert!(
            msg.contains(expected),
            "{bad}: got {msg:?}, expected {expected:?}"
        );
    }
}

#[test]
fn malformed_array_elements_name_their_line() {
    let text = "[\n  {\"text\": \"a\"},\n  {\"text\": \"b\"},\n  {\"instruction\": \"x\",\n   \"input\": \"\"}\n]";
    let (err, msg) = error(text, DataFormat::Auto);
    assert!(matches!(err, DataError::Field { .. }), "{msg}");
    assert!(
        msg.contains("bad.jsonl:4 (record 2): field `output`"),
        "{msg}"
    );
    let (err, msg) = error("[\n {\"text\": \"a\"},\n {\"text\": }\n]", DataFormat::Auto);
    assert!(matches!(err, DataError::Json { line: 3, .. }), "{msg}");
    let missing = load_records(Path::new("/nonexistent/data.jsonl"), DataFormat::Auto).unwrap_err();
    assert!(
        missing.to_string().contains("/nonexistent/data.jsonl"),
        "{missing}"
    );
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let text = "\u{feff}[{\"text\": \"hello\"}]";
    let records = parse_records(text, Path::new("bom.json"), DataFormat::Auto).unwrap();
    assert_eq!(records[0].format, RecordFormat::Text);
}
