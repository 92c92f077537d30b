//! `ift eval`: benchmark tasks on a model directory → `results.json` and a
//! Markdown table.

use std::path::PathBuf;

use anyhow::Result;
use ift::data::{ChatTemplate, TemplateOptions};
use ift::eval::tasks::{load_task, EvalOptions, Evaluator, TaskResult};
use ift::model::Pretrained;

#[derive(clap::Args)]
pub struct EvalArgs {
    /// Hugging Face model directory.
    #[arg(long)]
    model: PathBuf,
    /// A PEFT adapter directory (adapter_config.json, adapter_model.safetensors)
    /// applied to --model, merged in on load.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[command(flatten)]
    device: crate::device_arg::DeviceArg,
    /// `FILE[:kind]`, kind one of multiple_choice, schema, generation,
    /// perplexity; without it the kind is detected from the record keys.
    #[arg(long = "task", required = true)]
    tasks: Vec<String>,
    /// Where to write the JSON results.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Few-shot examples drawn from each task's own file (not scored).
    #[arg(long, default_value_t = 0)]
    fewshot: usize,
    /// Score at most N records per task (at least 1).
    #[arg(long, allow_negative_numbers = true, value_parser = crate::number_arg::at_least_one)]
    limit: Option<usize>,
    /// Wrap each prompt as a user turn of the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Sequences per forward pass (at least 1).
    #[arg(long, default_value_t = 8, allow_negative_numbers = true, value_parser = crate::number_arg::at_least_one)]
    batch_size: usize,
    /// Seed for the few-shot draw.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Generation tasks: longest answer in tokens (room for a worked answer; at least 1).
    #[arg(long, default_value_t = 256, allow_negative_numbers = true, value_parser = crate::number_arg::max_new_tokens)]
    max_new_tokens: usize,
    /// Generation tasks: the answer ends at the first occurrence of this
    /// string (repeatable). Default: a blank line and "Question:" for raw
    /// prompts, none with --chat (the end-of-turn token stops).
    #[arg(long = "stop")]
    stop: Vec<String>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    if let Some(out) = &args.out {
        let mut inputs = vec![args.model.as_path()];
        inputs.extend(args.adapter.as_deref());
        let files: Vec<&std::path::Path> = args
            .tasks
            .iter()
            .map(|t| std::path::Path::new(t.rsplit_once(':').map_or(t.as_str(), |(f, _)| f)))
            .collect();
        inputs.extend(files);
        ift::atomic::guard_output_file(out, "--out", &inputs)?;
    }
    let device = args.device.open()?;
    let Pretrained {
        model, tokenizer, ..
    } = ift::adapter::load_for_inference(&args.model, args.adapter.as_deref(), &device)?;
    let template = ChatTemplate::for_tokenizer(&tokenizer, &TemplateOptions::default())?;
    let evaluator = Evaluator {
        model: &model,
        tokenizer: &tokenizer,
        template: template.as_ref(),
        device: &device,
    };
    let options = EvalOptions {
        fewshot: args.fewshot,
        limit: args.limit,
        chat: args.chat,
        batch_size: args.batch_size,
        seed: args.seed,
        max_new_tokens: args.max_new_tokens,
        stop: (!args.stop.is_empty()).then(|| args.stop.clone()),
        stop_token_ids: ift::eval::default_stop_ids(&args.model, &tokenizer)?,
    };
    let mut results = Vec::new();
    for spec in &args.tasks {
        let task = load_task(spec)?;
        let bar = crate::progress::bar(0, &task.name);
        let start = std::time::Instant::now();
        let result = evaluator.run(&task, &options, |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })?;
        bar.finish_and_clear();
        eprintln!(
            "{}: {} records in {:.1}s",
            task.name,
            result.n,
            start.elapsed().as_secs_f64()
        );
        results.push(result);
    }
    if let Some(out) = &args.out {
        let json = serde_json::to_string_pretty(&serde_json::json!({
            "model": args.model,
            "fewshot": args.fewshot,
            "limit": args.limit,
            "chat": args.chat,
            "results": results,
        }))?;
        ift::model::write_file_atomically(out, json.as_bytes())?;
    }
    print!("{}", markdown_table(&results));
    Ok(())
}

/// `| task | kind | n | metric | value |`, one row per metric.
pub fn markdown_table(results: &[TaskResult]) -> String {
    let mut s = String::from("| task | kind | n | metric | value |\n|---|---|---|---|---|\n");
    for r in results {
        let kind = serde_json::to_value(r.kind)
            .map(|v| v.as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        for (m, v) in &r.metrics {
            s.push_str(&format!(
                "| {} | {kind} | {} | {m} | {v:.4} |\n",
                r.task, r.n
            ));
        }
    }
    s
}
