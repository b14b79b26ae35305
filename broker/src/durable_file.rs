//! Small files replaced whole and crash-safely: a temporary file written and synced, renamed
//! over the old one, then the directory synced, so a crash leaves either the old or the new
//! file. Blocking: for start-up, or off the reactors.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A step of [`replace_blocking`] that failed.
#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct FileError {
    pub op: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Replaces `dir/name` with `bytes`.
pub fn replace_blocking(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), FileError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let io = |op: &'static str, p: &Path| {
        let path = p.to_path_buf();
        move |source| FileError { op, path, source }
    };
    let mut file = fs::File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("sync", &tmp))?;
    fs::rename(&tmp, &path).map_err(io("rename", &path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync dir", dir))
}
