//! `ift generate`: one prompt in, the continuation streamed to stdout.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ift::data::{BuiltinTemplate, ChatTemplate, Message, TemplateOptions};
use ift::eval::{default_stop_ids, generate, GenerateOptions, TextStream};
use ift::model::Pretrained;

use crate::number_arg;
use crate::score::parse_builtin;

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Hugging Face model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// A PEFT adapter directory (adapter_config.json, adapter_model.safetensors)
    /// applied to --model, merged in on load.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[command(flatten)]
    device: crate::device_arg::DeviceArg,
    /// The prompt text (raw, tokenized as `tokenizer(text)`, unless --chat).
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt as a user turn in the model's chat template.
    #[arg(long)]
    chat: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// Decoding options shared by `ift generate` and `ift chat`.
#[derive(clap::Args)]
pub struct SamplingArgs {
    /// Most new tokens (at least 1).
    #[arg(long, default_value_t = 256, allow_negative_numbers = true, value_parser = number_arg::max_new_tokens)]
    max_new_tokens: usize,
    /// Softmax temperature, >= 0; 0 is greedy.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true, value_parser = number_arg::temperature)]
    temperature: f64,
    /// Sample among the k most likely tokens only; 0 keeps all.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = number_arg::whole)]
    top_k: usize,
    /// Nucleus sampling mass, in [0, 1]; 1 keeps all.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = number_arg::top_p)]
    top_p: f64,
    /// Penalty on tokens already present, > 0; 1 is off.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true, value_parser = number_arg::repetition_penalty)]
    repetition_penalty: f64,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Chat template for a model without one: `chatml` or `zephyr`.
    #[arg(long, value_parser = parse_builtin)]
    template_fallback: Option<BuiltinTemplate>,
}

impl SamplingArgs {
    /// The options, stopping at the model's EOS / end-of-turn ids.
    pub fn options(&self, model_dir: &Path, pre: &Pretrained) -> Result<GenerateOptions> {
        Ok(GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            stop_token_ids: default_stop_ids(model_dir, &pre.tokenizer)?,
            stop_strings: Vec::new(),
            seed: self.seed,
        })
    }

    pub fn template(&self, pre: &Pretrained) -> Result<ChatTemplate> {
        let options = TemplateOptions {
            name: None,
            fallback: self.template_fallback,
        };
        ChatTemplate::for_tokenizer(&pre.tokenizer, &options)?
            .context("the model has no chat template (give --template-fallback chatml or zephyr)")
    }
}

/// Token ids of `messages` rendered with the generation prompt appended.
pub fn chat_prompt(
    pre: &Pretrained,
    template: &ChatTemplate,
    messages: &[Message],
) -> Result<Vec<u32>> {
    let text = template
        .render(messages, true)
        .context("rendering the chat template")?;
    Ok(pre
        .tokenizer
        .encode(&text, template.adds_special_tokens())?
        .ids)
}

/// Generates from one prompt, printing text as it arrives; returns the new ids.
pub fn stream(pre: &Pretrained, prompt: Vec<u32>, opts: &GenerateOptions) -> Result<Vec<u32>> {
    let mut text = TextStream::new();
    let mut out = std::io::stdout().lock();
    let mut failed = None;
    let ids = generate(
        &pre.model,
        &pre.tokenizer,
        &[prompt],
        opts,
        pre.model.embed_tokens().device(),
        |_, id| {
            match text.push(&pre.tokenizer, id) {
                Ok(piece) => {
                    // A closed stdout (e.g. `| head`) must not abort generation mid-step.
                    let _ = out.write_all(piece.as_bytes()).and_then(|_| out.flush());
                }
                Err(e) => failed = Some(e),
            }
        },
    )?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    write!(out, "{}", text.finish(&pre.tokenizer)?)?;
    out.flush()?;
    Ok(ids.into_iter().next().unwrap_or_default())
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let pre = ift::adapter::load_for_inference(
        &args.model,
        args.adapter.as_deref(),
        &args.device.open()?,
    )
    .with_context(|| format!("loading {}", args.model.display()))?;
    let opts = args.sampling.options(&args.model, &pre)?;
    let prompt = if args.chat {
        let template = args.sampling.template(&pre)?;
        chat_prompt(
            &pre,
            &template,
            &[Message::new(ift::data::Role::User, args.prompt)],
        )?
    } else {
        pre.tokenizer.encode(&args.prompt, true)?.ids
    };
    stream(&pre, prompt, &opts)?;
    println!();
    Ok(())
}
