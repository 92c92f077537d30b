//! Training progress on the terminal: a bar with loss and tokens/s on a
//! terminal, plain log lines otherwise.

use std::io::IsTerminal;

use ift::eval::EvalLoss;
use ift::train::{Observer, StepMetrics};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Default)]
pub struct ProgressObserver {
    bar: Option<ProgressBar>,
    total: u64,
    /// Tenths of the current preparatory pass already reported.
    progress_tenths: usize,
}

impl Observer for ProgressObserver {
    fn on_start(&mut self, start_step: u64, total_steps: u64) {
        self.total = total_steps;
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total_steps);
            let style =
                ProgressStyle::with_template("train [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                    .expect("valid template")
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_position(start_step);
            self.bar = Some(bar);
        } else {
            eprintln!("training steps {}..{total_steps}", start_step + 1);
        }
    }

    fn on_step(&mut self, m: &StepMetrics) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(m.step);
                bar.set_message(format!("loss {:.4} | {:.0} tok/s", m.loss, m.tokens_per_s));
                if m.step == self.total {
                    bar.finish();
                }
            }
            None => {
                // Plain lines: about 50 per run, plus the last step.
                let every = (self.total / 50).max(1);
                if m.step.is_multiple_of(every) || m.step == self.total {
                    eprintln!(
                        "step {}/{} loss {:.4} grad_norm {:.3} lr {:.3e} {:.0} tok/s",
                        m.step, self.total, m.loss, m.grad_norm, m.lr, m.tokens_per_s
                    );
                }
            }
        }
    }

    fn on_eval(&mut self, step: u64, e: &EvalLoss) {
        // Preference objectives report their own loss, which has no perplexity.
        let message = match e.eval_tokens {
            0 => format!("step {step}: eval_loss {:.4}", e.eval_loss),
            _ => format!(
                "step {step}: eval_loss {:.4} (perplexity {:.2})",
                e.eval_loss, e.eval_ppl
            ),
        };
        self.on_notice(&message);
    }

    fn on_progress(&mut self, what: &str, done: usize, total: usize) {
        // One line per tenth of the pass, whatever the display.
        let tenth = done * 10 / total.max(1);
        if tenth > self.progress_tenths || done == total {
            self.progress_tenths = if done == total { 0 } else { tenth };
            self.on_notice(&format!("{what}: {done}/{total}"));
        }
    }

    fn on_notice(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }
}
