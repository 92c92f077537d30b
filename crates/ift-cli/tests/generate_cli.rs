//! `ift generate` and `ift chat` (issue 6) through the real binary on the
//! tiny fixture models.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use candle_core::Device;
use ift::data::{ChatTemplate, Message, Role, TemplateOptions};
use ift::eval::{default_stop_ids, generate, GenerateOptions};
use ift::model::{Pretrained, Trainable};

fn model_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ift/tests/fixtures/models")
        .join(name)
}

/// The library's greedy text for `prompt` (stopping where the CLI stops).
fn library_text(name: &str, prompt: Vec<u32>, pre: &Pretrained, max: usize) -> String {
    let opts = GenerateOptions {
        max_new_tokens: max,
        stop_token_ids: default_stop_ids(&model_dir(name), &pre.tokenizer).unwrap(),
        ..GenerateOptions::default()
    };
    let ids = generate(
        &pre.model,
        &pre.tokenizer,
        &[prompt],
        &opts,
        &Device::Cpu,
        |_, _| {},
    );
    pre.tokenizer.decode(&ids.unwrap()[0], true).unwrap()
}

fn run_generate(name: &str, extra: &[&str]) -> String {
    let dir = model_dir(name);
    let mut args = vec![
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--max-new-tokens",
        "16",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn generate_prints_the_library_greedy_output() {
    for name in ["llama_gqa", "qwen2_tied"] {
        let pre = Pretrained::load(&model_dir(name), &Trainable::None, &Device::Cpu).unwrap();
        let prompt = "The capital of France is";
        let ids = pre.tokenizer.encode(prompt, true).unwrap().ids;
        let want = library_text(name, ids, &pre, 16);
        assert_eq!(
            run_generate(name, &["--prompt", prompt]),
            format!("{want}\n"),
            "{name}"
        );

        let template = ChatTemplate::for_tokenizer(&pre.tokenizer, &TemplateOptions::default())
            .unwrap()
            .unwrap();
        let text = template
            .render(&[Message::new(Role::User, prompt)], true)
            .unwrap();
        let ids = pre
            .tokenizer
            .encode(&text, template.adds_special_tokens())
            .unwrap()
            .ids;
        let want = library_text(name, ids, &pre, 16);
        let got = run_generate(name, &["--prompt", prompt, "--chat"]);
        assert_eq!(got, format!("{want}\n"), "{name} --chat");
    }
}

#[test]
fn generate_sampling_is_seeded() {
    let flags = [
        "--prompt",
        "Hello",
        "--temperature",
        "0.9",
        "--top-k",
        "20",
        "--top-p",
        "0.95",
    ];
    let a = run_generate("llama3_rope", &[&flags[..], &["--seed", "4"]].concat());
    let b = run_generate("llama3_rope", &[&flags[..], &["--seed", "4"]].concat());
    assert_eq!(a, b);
}

#[test]
fn chat_answers_each_line_and_exits_on_eof() {
    let dir = model_dir("llama_gqa");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args([
            "chat",
            "--model",
            dir.to_str().unwrap(),
            "--max-new-tokens",
            "8",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\nwhat next?\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();

    // The same two turns through the library: the second turn sees the first answer.
    let pre = Pretrained::load(&dir, &Trainable::None, &Device::Cpu).unwrap();
    let template = ChatTemplate::for_tokenizer(&pre.tokenizer, &TemplateOptions::default())
        .unwrap()
        .unwrap();
    let mut history = Vec::new();
    let mut want = String::new();
    for line in ["hello", "what next?"] {
        history.push(Message::new(Role::User, line));
        let text = template.render(&history, true).unwrap();
        let ids = pre
            .tokenizer
            .encode(&text, template.adds_special_tokens())
            .unwrap()
            .ids;
        let answer = library_text("llama_gqa", ids, &pre, 8);
        want.push_str(&answer);
        want.push('\n');
        history.push(Message::new(Role::Assistant, answer));
    }
    assert_eq!(stdout, want);
}

#[test]
fn chat_reset_forgets_the_history() {
    let dir = model_dir("llama_gqa");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ift"))
        .args([
            "chat",
            "--model",
            dir.to_str().unwrap(),
            "--max-new-tokens",
            "8",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello\n/reset\nhello\n/exit\nnever read\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 2, "two answers, then /exit: {lines:?}");
    assert_eq!(
        lines[0], lines[1],
        "after /reset the same question gets the same answer"
    );
}

/// Issue 27: a sampling number out of range (negative, NaN, infinite, past
/// its bound) is a usage error naming the flag (exit 2) for `ift generate`
/// and `ift chat`; nothing is generated.
#[test]
fn sampling_numbers_out_of_range_are_usage_errors_naming_the_flag() {
    let dir = model_dir("llama_gqa");
    let cases = [
        (
            "--temperature",
            "-1",
            "'--temperature <TEMPERATURE>': -1 must be a finite number >= 0",
        ),
        (
            "--temperature",
            "nan",
            "'--temperature <TEMPERATURE>': NaN must be a finite number >= 0",
        ),
        (
            "--temperature",
            "inf",
            "'--temperature <TEMPERATURE>': inf must be a finite number >= 0",
        ),
        (
            "--top-p",
            "-0.5",
            "'--top-p <TOP_P>': -0.5 must be a finite number in [0, 1]",
        ),
        (
            "--top-p",
            "nan",
            "'--top-p <TOP_P>': NaN must be a finite number in [0, 1]",
        ),
        (
            "--top-p",
            "1.5",
            "'--top-p <TOP_P>': 1.5 must be a finite number in [0, 1]",
        ),
        (
            "--repetition-penalty",
            "0",
            "'--repetition-penalty <REPETITION_PENALTY>': 0 must be a finite number > 0",
        ),
        (
            "--repetition-penalty",
            "-2",
            "'--repetition-penalty <REPETITION_PENALTY>': -2 must be a finite number > 0",
        ),
        (
            "--repetition-penalty",
            "nan",
            "'--repetition-penalty <REPETITION_PENALTY>': NaN must be a finite number > 0",
        ),
        (
            "--max-new-tokens",
            "0",
            "'--max-new-tokens <MAX_NEW_TOKENS>': 0 must be at least 1",
        ),
        (
            "--top-k",
            "-1",
            "'--top-k <TOP_K>': `-1` is not a whole number >= 0",
        ),
    ];
    for (flag, value, want) in cases {
        for command in [vec!["generate", "--prompt", "Hello"], vec!["chat"]] {
            // Both spellings: `--flag VALUE` (a negative number is a value) and `--flag=VALUE`.
            let joined = format!("{flag}={value}");
            for spelling in [vec![flag, value], vec![joined.as_str()]] {
                let out = Command::new(env!("CARGO_BIN_EXE_ift"))
                    .args(&command)
                    .args(["--model", dir.to_str().unwrap()])
                    .args(&spelling)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(
                    out.status.code(),
                    Some(2),
                    "{command:?} {spelling:?}: {err}"
                );
                assert!(err.contains(want), "{command:?} {spelling:?}: {err}");
                assert!(out.stdout.is_empty(), "{command:?} {spelling:?} generated");
            }
        }
    }
    // The boundaries are accepted.
    let text = run_generate(
        "llama_gqa",
        &[
            "--prompt",
            "Hi",
            "--temperature",
            "0",
            "--top-p",
            "1",
            "--repetition-penalty",
            "1",
        ],
    );
    assert!(text.ends_with('\n'));
}
