//! Loading an offline estate from a directory of YAML (filled in by the estate loader work).

use std::path::{Path, PathBuf};

use super::MemoryEstate;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub system_namespace: String,
    /// Largest file read, in bytes.
    pub max_file_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { system_namespace: crate::DEFAULT_SYSTEM_NAMESPACE.to_string(), max_file_bytes: 16 << 20 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// Loads `dir`: files directly under it (recursively, except `regions/`) are the management
/// cluster; files under `regions/<name>/` are that Region's cluster.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<MemoryEstate, LoadError> {
    let _ = (dir, opts);
    Err(LoadError::File { path: dir.to_path_buf(), message: "not implemented yet".into() })
}

/// Loads individual files (all into the management cluster) — used by `lint -f`.
pub fn load_files(files: &[PathBuf], opts: &LoadOptions) -> Result<MemoryEstate, LoadError> {
    let _ = opts;
    Err(LoadError::File { path: files.first().cloned().unwrap_or_default(), message: "not implemented yet".into() })
}
