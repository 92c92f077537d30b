//! `ift chat`: an interactive conversation on stdin/stdout. The whole history
//! is re-rendered with the chat template each turn, as the model was trained.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use ift::data::{Message, Role};

use crate::generate::{chat_prompt, stream, SamplingArgs};

#[derive(clap::Args)]
pub struct ChatArgs {
    /// Hugging Face model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// A PEFT adapter directory (adapter_config.json, adapter_model.safetensors)
    /// applied to --model, merged in on load.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[command(flatten)]
    device: crate::device_arg::DeviceArg,
    /// A system message put first in every conversation.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

pub fn run(args: ChatArgs) -> Result<()> {
    let pre = ift::adapter::load_for_inference(
        &args.model,
        args.adapter.as_deref(),
        &args.device.open()?,
    )
    .with_context(|| format!("loading {}", args.model.display()))?;
    let opts = args.sampling.options(&args.model, &pre)?;
    let template = args.sampling.template(&pre)?;
    let fresh = || -> Vec<Message> {
        args.system
            .iter()
            .map(|s| Message::new(Role::System, s.clone()))
            .collect()
    };
    let mut history = fresh();
    // The prompt marker goes to stderr so stdout holds only the answers.
    eprintln!("ift chat: /reset clears the history, /exit or end of input quits.");
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("> ");
        std::io::stderr().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line.context("reading stdin")?;
        match line.trim() {
            "" => continue,
            "/exit" => break,
            "/reset" => {
                history = fresh();
                continue;
            }
            text => history.push(Message::new(Role::User, text)),
        }
        let prompt = chat_prompt(&pre, &template, &history)?;
        let ids = stream(&pre, prompt, &opts)?;
        println!();
        let answer = pre.tokenizer.decode(&ids, true)?;
        history.push(Message::new(Role::Assistant, answer));
    }
    eprintln!();
    Ok(())
}
