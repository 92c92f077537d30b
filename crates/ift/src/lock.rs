//! One writer per directory: an OS file lock (`flock(2)`) on `DIR/ift.lock`,
//! held for as long as the [`DirLock`] lives. The kernel releases it when
//! the process exits in any way, SIGKILL included, so a lock never outlives
//! its holder and needs no clean-up. The file itself stays and names the
//! last holder (process id and command line), which is what a second writer
//! is told.
//!
//! While a run directory is locked by this process, every temporary in it
//! that is not this process's was left by a dead one, so start-up may clean
//! them (`crate::atomic::recover_interrupted_writes`) without asking whether
//! their owner lives.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file inside a locked directory.
pub const LOCK_FILE: &str = "ift.lock";

/// A held lock on a directory; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    dir: PathBuf,
}

impl DirLock {
    /// Locks `dir` (created if missing) for this process, or fails at once
    /// naming the process that holds it. `what` names the directory for the
    /// user (e.g. "train.output_dir").
    pub fn acquire(dir: &Path, what: &str) -> Result<DirLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Write {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::Write {
                path: path.clone(),
                source: e,
            })?;
        if !try_lock(&file).map_err(|e| Error::io(&path, e))? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                h => format!("another process ({h})"),
            };
            return Err(Error::Usage(format!(
                "{what} {} is in use by {holder}; wait for it to finish, or choose another directory",
                dir.display()
            )));
        }
        let me = format!("pid {}: {}\n", std::process::id(), command_line());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()));
        written.map_err(|e| Error::Write {
            path: path.clone(),
            source: e,
        })?;
        Ok(DirLock {
            _file: file,
            dir: dir.to_path_buf(),
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Waits for and takes an exclusive lock on the file `path` (created if
/// missing), for a short critical section such as a read-merge-write of a
/// shared file; released when the returned `File` is dropped.
pub fn lock_file_blocking(path: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::Write {
            path: path.to_path_buf(),
            source: e,
        })?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock(2) on a file descriptor `file` owns and keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io(path, std::io::Error::last_os_error()));
        }
    }
    Ok(file)
}

/// `true` when the exclusive lock was taken, `false` when another holds it.
#[cfg(unix)]
fn try_lock(file: &File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a file descriptor this `File` owns and keeps open.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> std::io::Result<bool> {
    Ok(true)
}

/// This process's command line, short, for the lock file.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let line = args.join(" ");
    match line.chars().count() > 200 {
        true => line.chars().take(200).collect::<String>() + "…",
        false => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(tmp.path(), "train.output_dir").unwrap();
        // flock locks belong to the open file description: a second open in
        // the same process conflicts exactly as another process would.
        let err = DirLock::acquire(tmp.path(), "train.output_dir").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("is in use by another process"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert_eq!(err.class(), crate::ErrorClass::Usage);
        drop(first);
        DirLock::acquire(tmp.path(), "train.output_dir").unwrap();
    }
}
