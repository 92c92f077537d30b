//! The data pipeline: file → typed [`Record`]s → chat template → token ids with loss masks →
//! truncation → batches.
//!
//! Invariants: masks are `Vec<bool>` (no `-100`); `loss_mask[i]` marks token `i` as a target and
//! `loss_mask[0]` is false; each trained assistant turn includes its end-of-turn token; a
//! conversation is rendered and tokenized once; an example whose answer truncation removes is
//! dropped and counted in [`LoadSummary`].

mod batch;
mod dataset;
mod encode;
mod error;
mod examples;
mod json_py;
mod kto_pairs;
mod mask;
mod options;
mod order;
mod reader;
mod records;
mod strftime;
mod targets;
mod template;
mod truncate;
mod wire;
mod wire_llamafactory;

pub use batch::{
    batch_indices, BatchOptions, KtoBatch, PreferenceBatch, SequenceBatch, SequenceTensors, PAD_ID,
};
pub use dataset::{load_dataset, load_kto_dataset, load_preference_dataset, LoadSummary};
pub use encode::{encode_preference, encode_record, encode_unpaired, mask_record};
pub use encode::{EncodedExample, EncodedKto, EncodedPreference};
pub use error::{DataError, Location};
pub use examples::{StepBatch, StepExamples, TrainData};
pub use kto_pairs::kto_kl_sequences;
pub use mask::{mask_conversation, mask_text, MaskedText};
pub use options::{EncodeOptions, LoadOptions, PromptTruncation, TrainOn};
pub use order::BatchPlan;
pub use reader::{load_records, parse_records, DataFormat};
pub use records::{Message, Record, RecordBody, RecordFormat, Role};
pub use targets::{next_positions, target_mask, Targets};
pub use template::{BuiltinTemplate, ChatTemplate, TemplateOptions};
pub use truncate::truncate;
