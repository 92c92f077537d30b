//! PEFT's adapter directory: `adapter_config.json` (a `LoraConfig` as PEFT
//! writes it) and `adapter_model.safetensors` (tensors named
//! `base_model.model.<module>.lora_A.weight` / `lora_B.weight`). What `ift`
//! writes loads with `PeftModel.from_pretrained`; what PEFT writes loads here,
//! and a PEFT feature `ift` does not implement is an error naming its key.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

use super::config::{LoraConfig, TargetModule};
use crate::error::{Error, Result};
use crate::model::LlamaForCausalLM;

/// The adapter's settings file.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// The adapter's tensors.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// Whether `dir` holds a PEFT adapter.
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG).is_file()
}

/// `adapter_config.json` for `config`, with PEFT's defaults for the rest.
pub fn peft_config_json(config: &LoraConfig) -> Value {
    let targets: Vec<&str> = config.target_modules.iter().map(|t| t.name()).collect();
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": null,
        "r": config.r,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": targets,
        "use_rslora": config.use_rslora,
        "bias": "none",
        "lora_bias": false,
        "fan_in_fan_out": false,
        "use_dora": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    })
}

/// Writes the adapter of `model` into the existing directory `dir`.
pub fn write_adapter_files(model: &LlamaForCausalLM, dir: &Path) -> Result<()> {
    let config = model.adapter().ok_or_else(|| Error::Adapter {
        path: dir.to_path_buf(),
        message: "the model has no adapter to save".into(),
    })?;
    let path = dir.join(ADAPTER_CONFIG);
    let text = serde_json::to_string_pretty(&peft_config_json(config)).expect("JSON serialises");
    std::fs::write(&path, text + "\n").map_err(|e| Error::io(&path, e))?;
    super::base::write_base_file(model, dir)?;
    let tensors: HashMap<String, Tensor> = model.adapter_tensors().into_iter().collect();
    let path = dir.join(ADAPTER_WEIGHTS);
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::serialize_to_file(&tensors, metadata, &path).map_err(|e| Error::Safetensors {
        path: path.clone(),
        message: e.to_string(),
    })
}

/// Reads `dir/adapter_config.json`, refusing what `ift` cannot compute.
pub fn read_adapter_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    let bad = |key: &str, message: String| Error::Adapter {
        path: path.clone(),
        message: format!("`{key}`: {message}"),
    };
    if v["peft_type"] != "LORA" {
        return Err(bad(
            "peft_type",
            format!("{} is not \"LORA\"", v["peft_type"]),
        ));
    }
    // PEFT features that change the computation; `ift` implements none of them.
    let unsupported = [
        ("use_dora", v["use_dora"] == true),
        ("lora_bias", v["lora_bias"] == true),
        ("fan_in_fan_out", v["fan_in_fan_out"] == true),
        ("use_qalora", v["use_qalora"] == true),
        ("bias", !(v["bias"].is_null() || v["bias"] == "none")),
        ("modules_to_save", !empty(&v["modules_to_save"])),
        ("rank_pattern", !empty(&v["rank_pattern"])),
        ("alpha_pattern", !empty(&v["alpha_pattern"])),
        ("layers_to_transform", !empty(&v["layers_to_transform"])),
        ("exclude_modules", !empty(&v["exclude_modules"])),
        ("layer_replication", !empty(&v["layer_replication"])),
        ("target_parameters", !empty(&v["target_parameters"])),
        (
            "trainable_token_indices",
            !empty(&v["trainable_token_indices"]),
        ),
    ];
    if let Some((key, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(bad(key, format!("{} is not supported by ift", v[*key])));
    }
    let r = v["r"].as_u64().filter(|&r| r > 0);
    let r = r.ok_or_else(|| bad("r", format!("{} is not a rank >= 1", v["r"])))? as usize;
    let alpha = v["lora_alpha"].as_f64().unwrap_or(8.0); // PEFT's default
    let dropout = v["lora_dropout"].as_f64().unwrap_or(0.0);
    let use_rslora = v["use_rslora"].as_bool().unwrap_or(false);
    let target_modules = targets(&v["target_modules"]).map_err(|m| bad("target_modules", m))?;
    Ok(LoraConfig {
        r,
        alpha,
        dropout,
        target_modules,
        use_rslora,
    })
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// PEFT's `target_modules`: a list of module names or `"all-linear"`.
fn targets(v: &Value) -> std::result::Result<Vec<TargetModule>, String> {
    if v == "all-linear" {
        return Ok(TargetModule::ALL.to_vec());
    }
    let Some(list) = v.as_array() else {
        return Err(format!(
            "{v}: only a list of projection names or \"all-linear\" is supported (not a regex)"
        ));
    };
    let mut out = Vec::new();
    for item in list {
        let name = item.as_str().unwrap_or_default();
        let t = TargetModule::from_name(name).ok_or_else(|| {
            format!("{item} is not a projection ift can adapt (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)")
        })?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out.sort();
    Ok(out)
}

/// The adapter tensors of `dir/adapter_model.safetensors` in f32, by PEFT name.
pub fn read_adapter_tensors(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let path = dir.join(ADAPTER_WEIGHTS);
    if !path.is_file() {
        let e = std::io::Error::new(std::io::ErrorKind::NotFound, "no adapter weights");
        return Err(Error::io(&path, e));
    }
    let tensors =
        candle_core::safetensors::load(&path, device).map_err(|e| Error::Safetensors {
            path: path.clone(),
            message: e.to_string(),
        })?;
    tensors
        .into_iter()
        .map(|(name, t)| Ok((name, t.to_dtype(DType::F32)?)))
        .collect()
}
