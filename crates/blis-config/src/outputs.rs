//! Output files, written atomically: each is created up front as a temporary file beside its
//! target (so an unwritable path fails before anything is simulated) and renamed over the target
//! only when the whole run succeeded. A run that fails, or panics, leaves nothing behind.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::ConfigError;

/// `PREFIX.yaml`, `PREFIX.csv` of a TraceV2 export.
pub fn trace_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let with = |ext: &str| {
        let mut s = prefix.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    (with(".yaml"), with(".csv"))
}

/// An output file being written: a temporary file until [`PendingFile::commit`].
#[derive(Debug)]
pub struct PendingFile {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    committed: bool,
}

impl PendingFile {
    /// Creates the temporary file beside `target`; `key` names the option in errors.
    pub fn create(target: &Path, key: &str) -> Result<PendingFile, ConfigError> {
        let err = |m: String| ConfigError::new(key, format!("--{key}"), m);
        if target.is_dir() {
            return Err(err(format!("{} is a directory", target.display())));
        }
        let name =
            target.file_name().ok_or_else(|| err(format!("{} is not a file name", target.display())))?;
        let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let file = File::create(&tmp).map_err(|e| err(format!("cannot create {}: {e}", target.display())))?;
        Ok(PendingFile { target: target.to_path_buf(), tmp, file: Some(file), committed: false })
    }

    /// The file to write into.
    pub fn writer(&mut self) -> &mut File {
        self.file.as_mut().expect("not committed")
    }

    /// A second handle on the temporary file (for writers that must own theirs).
    pub fn try_clone(&self) -> std::io::Result<File> {
        self.file.as_ref().expect("not committed").try_clone()
    }

    /// Writes `text` as the whole content.
    pub fn write_all(&mut self, text: &[u8]) -> std::io::Result<()> {
        self.writer().write_all(text)
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes and moves the file over its target.
    pub fn commit(mut self) -> std::io::Result<()> {
        let file = self.file.take().expect("committed once");
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.target)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Commits every file or none: all are flushed first, then renamed in order.
pub fn commit_all(files: Vec<PendingFile>) -> Result<(), String> {
    for mut f in files {
        let target = f.target.display().to_string();
        f.writer().flush().map_err(|e| format!("cannot write {target}: {e}"))?;
        f.commit().map_err(|e| format!("cannot write {target}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_left_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.json");
        {
            let mut f = PendingFile::create(&target, "metrics-path").unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut f = PendingFile::create(&target, "metrics-path").unwrap();
        f.write_all(b"whole").unwrap();
        commit_all(vec![f]).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "whole");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let e = PendingFile::create(&dir.path().join("no/such/dir/x.json"), "results-path").unwrap_err();
        assert!(e.to_string().starts_with("--results-path: cannot create"), "{e}");
    }
}
