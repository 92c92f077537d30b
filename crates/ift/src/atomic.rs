//! Durable, atomic writes: the one way the library puts a file or a directory
//! where a later run (or a person) will look for it.
//!
//! Everything is written to a temporary sibling (`.NAME.tmp-PID`), every file
//! and the directory are fsynced, and only then is it renamed into place and
//! the parent directory fsynced. So at every instant `NAME` is either the
//! complete previous version or the complete new one — except while a
//! directory is being replaced, when the previous one sits at
//! `.NAME.old-PID` for the instant between two renames;
//! [`recover_interrupted_writes`] (run at the start of a run, and for its
//! own name by every write) puts it back if the process died there and
//! removes the temporaries of killed processes.
//! A failed write removes its temporary and leaves `NAME` as it was.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Temporary siblings, by kind: being written, replaced version, being deleted.
const KINDS: [&str; 3] = [".tmp-", ".old-", ".del-"];

/// Writes `bytes` to `path` durably: a reader sees the old file or the new
/// one, never a part, and a crash after this returns cannot lose it.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let (parent, name) = split(path)?;
    recover(&parent, Some(&name), false)?;
    let tmp = sibling(&parent, &name, ".tmp-");
    let written = write_new_file(&tmp, bytes).and_then(|()| {
        crash_point("file-written");
        std::fs::rename(&tmp, path).map_err(|e| write_error(path, e))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(&parent)
}

/// Runs `fill` on a fresh temporary sibling of `dir`, syncs everything it
/// wrote, then moves it into place, replacing any previous `dir` only after
/// `fill` succeeded. An error names `dir` and the file that failed.
pub fn write_atomically(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (parent, name) = split(dir)?;
    // A killed earlier write of the same output leaves nothing behind.
    recover(&parent, Some(&name), false)?;
    let tmp = sibling(&parent, &name, ".tmp-");
    let _ = std::fs::remove_dir_all(&tmp);
    let filled = std::fs::create_dir_all(&tmp)
        .map_err(|e| write_error(&tmp, e))
        .and_then(|()| fill(&tmp))
        .and_then(|()| sync_tree(&tmp));
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Error::WriteDir {
            path: dir.to_path_buf(),
            source: Box::new(e),
        });
    }
    crash_point("dir-filled");
    if dir.exists() {
        let old = sibling(&parent, &name, ".old-");
        std::fs::rename(dir, &old).map_err(|e| write_error(dir, e))?;
        crash_point("dir-swapped");
        std::fs::rename(&tmp, dir).map_err(|e| write_error(dir, e))?;
        sync_dir(&parent)?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, dir).map_err(|e| write_error(dir, e))?;
        sync_dir(&parent)?;
    }
    Ok(())
}

/// Deletes `dir` so that a crash midway never leaves a half-deleted
/// directory under its real name: it is renamed to a temporary first.
pub fn remove_dir_atomically(dir: &Path) -> Result<()> {
    let (parent, name) = split(dir)?;
    let trash = sibling(&parent, &name, ".del-");
    std::fs::rename(dir, &trash).map_err(|e| Error::io(dir, e))?;
    sync_dir(&parent)?;
    std::fs::remove_dir_all(&trash).map_err(|e| Error::io(&trash, e))
}

/// Cleans up after processes that died while writing into `dir`: their
/// temporaries are removed and a previous version caught between the two
/// renames of a replacement is put back. Returns what was done, for a notice.
/// Temporaries of a process still alive are left alone.
pub fn recover_interrupted_writes(dir: &Path) -> Result<Vec<String>> {
    recover(dir, None, false)
}

/// [`recover_interrupted_writes`] in a directory this process holds the
/// lock of (`crate::lock`): every other process's temporary there was left by
/// a dead one, even if its process id now belongs to a live process.
pub fn recover_locked_dir(lock: &crate::lock::DirLock) -> Result<Vec<String>> {
    recover(lock.dir(), None, true)
}

/// [`recover_interrupted_writes`] for the temporaries of one name only (or
/// all); `locked`: the directory is ours, ignore whether a pid is alive.
fn recover(dir: &Path, only: Option<&str>, locked: bool) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some((name, kind, pid)) = parse_sibling(&file_name) else {
            continue;
        };
        let owner_alive = !locked && process_alive(pid);
        if pid == std::process::id() || owner_alive || only.is_some_and(|o| o != name) {
            continue;
        }
        let (path, target) = (entry.path(), dir.join(name));
        if kind == ".old-" && !target.exists() {
            std::fs::rename(&path, &target).map_err(|e| Error::io(&path, e))?;
            done.push(format!(
                "restored {} (a replacement was interrupted)",
                target.display()
            ));
        } else {
            let removed = match path.is_dir() {
                true => std::fs::remove_dir_all(&path),
                false => std::fs::remove_file(&path),
            };
            removed.map_err(|e| Error::io(&path, e))?;
            done.push(format!(
                "removed {} (left by a killed process)",
                path.display()
            ));
        }
    }
    if !done.is_empty() {
        sync_dir(dir)?;
    }
    Ok(done)
}

/// The file an `ift` command leaves in each output directory it makes,
/// naming the command; only such a directory (or an empty one) may be
/// replaced by a later command ([`guard_output_dir`]).
pub const OUTPUT_MARKER: &str = ".ift-output";

/// Refuses an output directory that is not ours to overwrite: `out` may be
/// absent, empty, or a directory an `ift` command made (it holds
/// [`OUTPUT_MARKER`]), and it may be neither one of `inputs`, nor inside
/// one, nor above one. `what` names the option (`--out`). The error names
/// the directory and what is in it.
pub fn guard_output_dir(out: &Path, what: &str, inputs: &[&Path]) -> Result<()> {
    let real_out = real_path(out);
    for input in inputs {
        let real_in = real_path(input);
        let relation = if real_in == real_out {
            Some("is")
        } else if real_in.starts_with(&real_out) {
            Some("contains")
        } else if real_out.starts_with(&real_in) {
            Some("is inside")
        } else {
            None
        };
        if let Some(relation) = relation {
            return Err(Error::Output(format!(
                "{what} {} {relation} the input {}; an output is never written over, around or inside its own inputs: choose another directory",
                out.display(),
                input.display()
            )));
        }
    }
    if out.exists() && !out.is_dir() {
        return Err(Error::Output(format!(
            "{what} {} is a file, not a directory; it is left as it is: choose another path",
            out.display()
        )));
    }
    let entries: Vec<String> = match std::fs::read_dir(out) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => return Ok(()),
    };
    if entries.is_empty() || entries.iter().any(|e| e == OUTPUT_MARKER) {
        return Ok(());
    }
    let mut shown: Vec<String> = entries.clone();
    shown.sort();
    let more = shown.len().saturating_sub(6);
    shown.truncate(6);
    let listing = match more {
        0 => shown.join(", "),
        n => format!("{}, and {n} more", shown.join(", ")),
    };
    // A training run's directory (`ift train` locks it) is never replaced.
    let made_by = match entries.iter().any(|e| e == crate::lock::LOCK_FILE) {
        true => "is a training run's directory",
        false => "already exists and was not made by an ift command",
    };
    Err(Error::Output(format!(
        "{what} {} {made_by} (it holds {listing}); it is left as it is: remove it yourself or choose another directory",
        out.display()
    )))
}

/// Refuses an output file that is one of `inputs` or lies inside one (a
/// results file written over its data, or into the model directory it
/// scored). `what` names the option.
pub fn guard_output_file(out: &Path, what: &str, inputs: &[&Path]) -> Result<()> {
    let real_out = real_path(out);
    for input in inputs {
        let real_in = real_path(input);
        if real_out == real_in || real_out.starts_with(&real_in) {
            let relation = if real_out == real_in {
                "is"
            } else {
                "is inside"
            };
            return Err(Error::Output(format!(
                "{what} {} {relation} the input {}; an output is never written over or inside its own inputs: choose another path",
                out.display(),
                input.display()
            )));
        }
    }
    if out.is_dir() {
        return Err(Error::Output(format!(
            "{what} {} is a directory; it is left as it is: give a file path",
            out.display()
        )));
    }
    Ok(())
}

/// Records in `dir` (just written by `command`) that a later `ift` command
/// may replace it.
pub fn mark_output_dir(dir: &Path, command: &str) -> Result<()> {
    let text = format!("made by `{command}`; an ift command may replace this directory\n");
    write_file_atomically(&dir.join(OUTPUT_MARKER), text.as_bytes())
}

/// `path` made absolute with every link resolved, as far as it exists (the
/// rest appended as written, `..` folded).
fn real_path(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut real = std::fs::canonicalize(&existing).unwrap_or(existing);
    for part in rest.iter().rev() {
        match part.to_str() {
            Some("..") => {
                real.pop();
            }
            Some(".") => {}
            _ => real.push(part),
        }
    }
    real
}

/// Writes a new file that an enclosing [`write_atomically`] makes durable;
/// an error names the file.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(|e| write_error(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| write_error(path, e))
}

/// Writes a safetensors file (streamed, not built in memory) that an
/// enclosing [`write_atomically`] makes durable; a full disk is a write error
/// naming the file, not a malformed safetensors.
pub fn write_safetensors(
    path: &Path,
    tensors: &std::collections::HashMap<String, candle_core::Tensor>,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<()> {
    safetensors::serialize_to_file(tensors, metadata, path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(source) => write_error(path, source),
        e => Error::Safetensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        },
    })
}

fn write_error(path: &Path, source: std::io::Error) -> Error {
    Error::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// fsyncs every file under `dir`, then `dir` itself, so that the rename
/// that publishes it cannot reach the disk before its contents.
fn sync_tree(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            let f = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
            f.sync_all().map_err(|e| write_error(&path, e))?;
        }
    }
    sync_dir(dir)
}

/// fsyncs a directory, making renames and new entries in it durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let f = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        f.sync_all().map_err(|e| write_error(dir, e))?;
    }
    Ok(())
}

/// The parent directory (created if needed) and the file name of `path`.
fn split(path: &Path) -> Result<(PathBuf, String)> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| write_error(parent, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((parent.to_path_buf(), name))
}

fn sibling(parent: &Path, name: &str, kind: &str) -> PathBuf {
    parent.join(format!(".{name}{kind}{}", std::process::id()))
}

/// `.NAME<kind>PID` → (NAME, kind, PID).
fn parse_sibling(file_name: &str) -> Option<(&str, &'static str, u32)> {
    let rest = file_name.strip_prefix('.')?;
    KINDS.iter().find_map(|&kind| {
        let at = rest.rfind(kind)?;
        let pid = rest[at + kind.len()..].parse().ok()?;
        Some((&rest[..at], kind, pid))
    })
}

fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.is_dir() && proc.join(pid.to_string()).exists()
}

/// Crash injection for the tests (the `test-hooks` feature only; a no-op
/// otherwise): `IFT_TEST_CRASH_AT=POINT:N` kills the process
/// with SIGKILL the N-th time it reaches `POINT` (`dir-filled`: a directory
/// is complete under its temporary name; `dir-swapped`: the previous version
/// is moved aside; `file-written`: a file's temporary is complete). Lets the
/// crash-injection tests die at the instants that matter, not only between
/// steps.
#[cfg(not(feature = "test-hooks"))]
fn crash_point(_point: &str) {}

/// See the other `crash_point`: compiled only with the `test-hooks` feature.
#[cfg(feature = "test-hooks")]
fn crash_point(point: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let Ok(spec) = std::env::var("IFT_TEST_CRASH_AT") else {
        return;
    };
    let Some((want, n)) = spec.split_once(':') else {
        return;
    };
    if want == point && SEEN.fetch_add(1, Ordering::SeqCst) + 1 == n.parse().unwrap_or(0) {
        #[cfg(unix)]
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

#[cfg(test)]
#[path = "atomic_tests.rs"]
mod tests;
