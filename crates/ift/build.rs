//! Links OpenBLAS statically for the `openblas` feature (and does nothing
//! otherwise). The library is looked for in `OPENBLAS_LIB_DIR`, then where
//! Debian/Ubuntu (`apt install libopenblas-dev`), Fedora and a source build
//! put `libopenblas.a`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=OPENBLAS_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_OPENBLAS").is_none() {
        return;
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("OPENBLAS_LIB_DIR")
        .map(|d| vec![PathBuf::from(d)])
        .unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    for d in [
        format!("/usr/lib/{arch}-linux-gnu/openblas-pthread"),
        format!("/usr/lib/{arch}-linux-gnu"),
        "/usr/lib64".into(),
        "/usr/local/lib".into(),
        "/opt/OpenBLAS/lib".into(),
    ] {
        dirs.push(d.into());
    }
    let Some(dir) = dirs.iter().find(|d| d.join("libopenblas.a").is_file()) else {
        panic!(
            "feature `openblas`: libopenblas.a was not found in {}; install it \
             (Debian/Ubuntu: apt install libopenblas-dev) or set OPENBLAS_LIB_DIR \
             to the directory that holds it",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    println!("cargo:rustc-link-search=native={}", dir.display());
    println!("cargo:rustc-link-lib=static=openblas");
    // OpenBLAS's threads.
    println!("cargo:rustc-link-lib=dylib=pthread");
}
