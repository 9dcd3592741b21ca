//! The technician's diagnostics bundle: what goes in it, and writing it out.
//!
//! The runner gathers the contents on its loop (memory and journal reads, milliseconds)
//! and hands a [`Bundle`] to the blocking pool, which does every file operation on the
//! target. A USB stick can take seconds per write, or hang when it is pulled half way;
//! on the runner's loop that would stop commands, the screen and the systemd watchdog
//! pings (and get the kiosk restarted mid-export). The answer comes back to the runner,
//! which audits it and answers the technician.

use std::path::{Path, PathBuf};

/// Mount points under `/media`, `/run/media` and `/mnt` (where USB sticks appear), from
/// `/proc/self/mounts`.
pub(crate) fn removable_mounts() -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut dirs: Vec<String> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        // /proc/self/mounts escapes spaces as \040.
        .map(|d| d.replace("\\040", " "))
        .filter(|d| {
            ["/media/", "/run/media/", "/mnt/"]
                .iter()
                .any(|p| d.starts_with(p))
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// A bundle ready to be written: its JSON files, in order, and where the logs are.
#[derive(Debug)]
pub(crate) struct Bundle {
    /// The technician's target directory (a mount point; must exist).
    pub(crate) dir: PathBuf,
    /// The bundle's own directory name inside `dir`.
    pub(crate) name: String,
    /// `name.json` → content.
    pub(crate) files: Vec<(&'static str, serde_json::Value)>,
    /// The kiosk's log directory, copied into `logs/`.
    pub(crate) logs_dir: PathBuf,
}

impl Bundle {
    /// Writes the bundle (blocking: run it on the blocking pool). Returns the bundle's
    /// directory and the files in it, or what went wrong.
    pub(crate) fn write(self) -> Result<(PathBuf, Vec<String>), String> {
        self.try_write()
            .map_err(|e| format!("cannot write the bundle: {e}"))
    }

    fn try_write(self) -> Result<(PathBuf, Vec<String>), Box<dyn std::error::Error>> {
        if !self.dir.is_dir() {
            return Err(format!("{} is not a directory", self.dir.display()).into());
        }
        let bundle = self.dir.join(&self.name);
        std::fs::create_dir(&bundle)?;
        let mut written = vec![];
        for (name, value) in &self.files {
            std::fs::write(bundle.join(name), serde_json::to_vec_pretty(value)?)?;
            written.push((*name).to_owned());
        }
        let logs = bundle.join("logs");
        std::fs::create_dir(&logs)?;
        for (name, from) in log_files(&self.logs_dir) {
            // Read and write rather than fs::copy, which copies regular files only.
            let mut src = std::fs::File::open(&from)?;
            let mut dst = std::fs::File::create(logs.join(&name))?;
            std::io::copy(&mut src, &mut dst)?;
            written.push(format!("logs/{name}"));
        }
        Ok((bundle, written))
    }
}

/// The entries of the log directory to copy, sorted by name: everything but
/// directories, following symlinks (a log that is a link to another disk is copied, not
/// the link; a log that is a pipe is read to its end, which is how the tests hold an
/// export half way). A log directory that cannot be read gives none: the rest of the
/// bundle is still worth having.
fn log_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| !m.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_bundle_holds_its_json_files_and_a_copy_of_the_logs() {
        let target = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        std::fs::write(logs.path().join("cabinet.2026-01-02.log"), "line\n").unwrap();
        std::fs::create_dir(logs.path().join("old")).unwrap();
        let (path, files) = Bundle {
            dir: target.path().to_path_buf(),
            name: "cabinet-C001-1".into(),
            files: vec![("a.json", serde_json::json!({"x": 1}))],
            logs_dir: logs.path().to_path_buf(),
        }
        .write()
        .unwrap();
        assert_eq!(path, target.path().join("cabinet-C001-1"));
        assert_eq!(files, ["a.json", "logs/cabinet.2026-01-02.log"]);
        assert_eq!(
            std::fs::read_to_string(path.join("logs/cabinet.2026-01-02.log")).unwrap(),
            "line\n"
        );
    }

    #[test]
    fn a_target_that_is_not_a_directory_is_refused_by_name() {
        let e = Bundle {
            dir: PathBuf::from("/nonexistent/usb"),
            name: "b".into(),
            files: vec![],
            logs_dir: PathBuf::from("/nonexistent/logs"),
        }
        .write()
        .unwrap_err();
        assert!(e.contains("/nonexistent/usb is not a directory"), "{e}");
    }
}
