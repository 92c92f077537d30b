//! `ift score`: summed log-probabilities of each record's trained tokens,
//! one JSON line per record, in file order.

use std::path::PathBuf;

use anyhow::Result;
use ift::data::{
    load_records, mask_record, BuiltinTemplate, ChatTemplate, DataFormat, EncodeOptions,
    EncodedExample, TemplateOptions,
};
use ift::eval::score_sequences;
use ift::model::Pretrained;

#[derive(clap::Args)]
pub struct ScoreArgs {
    /// Hugging Face model directory (config.json, safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// A PEFT adapter directory (adapter_config.json, adapter_model.safetensors)
    /// applied to --model, merged in on load.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[command(flatten)]
    device: crate::device_arg::DeviceArg,
    /// Records, JSONL or a JSON array: `{"text"}` (every token after the
    /// first scored, tokenized as `tokenizer(text)`), or chat,
    /// prompt/completion, Alpaca, ShareGPT (the answer tokens scored, with
    /// the model's chat template when it has one).
    #[arg(long)]
    data: PathBuf,
    /// Where to write one `{"logprob_sum", "tokens"}` line per record.
    #[arg(long)]
    out: PathBuf,
    /// Sequences per forward pass (at least 1).
    #[arg(long, default_value_t = 8, allow_negative_numbers = true, value_parser = crate::number_arg::at_least_one)]
    batch_size: usize,
    /// Chat template for a model without one: `chatml` or `zephyr`.
    #[arg(long, value_parser = parse_builtin)]
    template_fallback: Option<BuiltinTemplate>,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let mut inputs = vec![args.model.as_path(), args.data.as_path()];
    inputs.extend(args.adapter.as_deref());
    ift::atomic::guard_output_file(&args.out, "--out", &inputs)?;
    let device = args.device.open()?;
    let Pretrained {
        model, tokenizer, ..
    } = ift::adapter::load_for_inference(&args.model, args.adapter.as_deref(), &device)?;
    let template_options = TemplateOptions {
        name: None,
        fallback: args.template_fallback,
    };
    let template = ChatTemplate::for_tokenizer(&tokenizer, &template_options)?;
    // Scoring never truncates: every record gets its line.
    let encode = EncodeOptions {
        max_length: None,
        ..EncodeOptions::default()
    };
    let mut examples = Vec::new();
    for record in load_records(&args.data, DataFormat::Auto)? {
        let masked = mask_record(&record, &tokenizer, template.as_ref(), &encode)?;
        examples.push(EncodedExample {
            input_ids: masked.input_ids,
            loss_mask: masked.loss_mask,
        });
    }
    let bar = crate::progress::bar(examples.len() as u64, "scoring");
    let scores = score_sequences(&model, &examples, args.batch_size, &device, |n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    let mut text = String::new();
    for s in scores {
        text.push_str(&serde_json::to_string(&s)?);
        text.push('\n');
    }
    Ok(ift::model::write_file_atomically(
        &args.out,
        text.as_bytes(),
    )?)
}

/// Parses a built-in template name as the config file spells it.
pub fn parse_builtin(name: &str) -> Result<BuiltinTemplate, String> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| format!("unknown template `{name}` (built in: chatml, zephyr)"))
}
