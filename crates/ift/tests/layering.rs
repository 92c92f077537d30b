//! Issue 28: the library's folders point down (`ARCHITECTURE.md`,
//! "Folders point down"). Each folder's code (comments and `#[cfg(test)]`
//! tails left out) names no module above it; a new import that runs back up
//! fails here, naming the file and the line.

use std::path::{Path, PathBuf};

/// The library's layers, lowest first: each must not import any layer after
/// it, nor the modules that assemble a run.
const LAYERS: [&str; 9] = [
    "data",
    "model",
    "engine",
    "loss",
    "eval",
    "reference",
    "methods",
    "objective",
    "train",
];
const TOP: [&str; 3] = ["run", "adapter", "resume"];

/// The one import that runs up on purpose: LoRA's dropout mask on CUDA is an
/// engine kernel (the `cuda` feature only).
const ALLOWED: &[&str] = &["crate::engine::kernels::cuda::dropout_mask"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs")
            && !p.to_string_lossy().ends_with("_tests.rs")
        {
            out.push(p);
        }
    }
}

#[test]
fn folders_import_nothing_above_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (i, layer) in LAYERS.iter().enumerate() {
        let above: Vec<&str> = LAYERS[i + 1..].iter().chain(&TOP).copied().collect();
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "src/{layer}/ holds no Rust file");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("#[cfg(test)]") {
                    break; // the file's test module: tests may reach anywhere
                }
                let code = line.split("//").next().unwrap_or("");
                checked += 1;
                for module in &above {
                    let needle = format!("crate::{module}");
                    let hit = code.match_indices(&needle).any(|(i, _)| {
                        let rest = &code[i + needle.len()..];
                        !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                            && !ALLOWED.iter().any(|a| code[i..].starts_with(a))
                    });
                    if hit {
                        let rel = file.strip_prefix(&src).unwrap().display().to_string();
                        wrong.push(format!(
                            "src/{rel}:{}: `{layer}` imports `{needle}`: {}",
                            n + 1,
                            line.trim()
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} lines read");
    assert!(
        wrong.is_empty(),
        "imports that run back up:\n{}",
        wrong.join("\n")
    );
}
