//! [`Config::check_host`]: what can be checked on this machine before the kiosk starts
//! (the files and devices the config names).

use std::path::Path;

use super::validate::{Validator, is_env_name};
use super::{Config, ConfigError, Problem};

impl Config {
    /// What can be checked on this machine before the kiosk starts (the files and
    /// devices the config names), each problem naming its field and what is allowed.
    /// [`Config::validate`] checks the text alone; this looks at the file system and
    /// the environment as the kiosk will see them, so run it as the kiosk's user (the
    /// units' `ExecStartPre` does). Fields that `validate` already refuses are skipped.
    ///
    /// Missing things that the kiosk creates or waits for are fine: the journal's file
    /// and directories, the logs directory, and the board port (a USB adapter that is
    /// unplugged means "out of service" until it comes back).
    pub fn check_host(&self) -> Vec<Problem> {
        let mut v = Validator::default();
        let m = &self.mqtt;
        if let Some(p) = m
            .password_file
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let allowed = "must be a readable file whose first line is the MQTT password";
            match std::fs::metadata(p) {
                Err(e) => v.add(
                    "mqtt.password_file",
                    &format!("{}: {} ({allowed})", p.display(), io_why(&e)),
                ),
                Ok(md) if !md.is_file() => v.add(
                    "mqtt.password_file",
                    &format!("{} is {} ({allowed})", p.display(), kind_of(&md)),
                ),
                Ok(_) => {
                    if let Err(ConfigError::PasswordFile { message, .. }) = m.load_password() {
                        v.add(
                            "mqtt.password_file",
                            &format!("{}: {message} ({allowed})", p.display()),
                        );
                    }
                }
            }
        }
        if let Some(var) = m.password_env.as_deref().filter(|e| is_env_name(e))
            && m.password_file.is_none()
            && m.load_password().is_err()
        {
            v.add(
                "mqtt.password_env",
                &format!(
                    "the variable {var} is not set, empty or not UTF-8 in this environment \
                     (the kiosk reads the MQTT password from it; set it where the kiosk runs, \
                     e.g. Environment= in the unit)"
                ),
            );
        }
        if let Some(p) = &m.ca_file {
            match std::fs::metadata(p) {
                Err(e) => v.add(
                    "mqtt.ca_file",
                    &format!(
                        "{}: {} (must be a readable PEM file)",
                        p.display(),
                        io_why(&e)
                    ),
                ),
                Ok(md) if !md.is_file() => v.add(
                    "mqtt.ca_file",
                    &format!(
                        "{} is {} (must be a readable PEM file)",
                        p.display(),
                        kind_of(&md)
                    ),
                ),
                Ok(_) => {
                    if let Err(e) = std::fs::File::open(p) {
                        v.add(
                            "mqtt.ca_file",
                            &format!(
                                "{}: {} (must be a readable PEM file)",
                                p.display(),
                                io_why(&e)
                            ),
                        );
                    }
                }
            }
        }

        let journal = &self.journal.path;
        if !journal.as_os_str().is_empty() {
            let allowed = "must be a regular file (the SQLite journal) or not exist yet, \
                           in a directory that exists or can be created";
            match std::fs::metadata(journal) {
                Ok(md) if !md.is_file() => v.add(
                    "journal.path",
                    &format!("{} is {} ({allowed})", journal.display(), kind_of(&md)),
                ),
                Ok(_) => {}
                Err(e) if missing(&e) => {
                    if let Some(why) = creatable(journal) {
                        v.add(
                            "journal.path",
                            &format!("{}: {why} ({allowed})", journal.display()),
                        );
                    }
                }
                Err(e) => v.add(
                    "journal.path",
                    &format!("{}: {} ({allowed})", journal.display(), io_why(&e)),
                ),
            }
            // The instance lock beside it is the first file the kiosk creates.
            let lock = self.journal.beside(".lock");
            if let Ok(md) = std::fs::metadata(&lock)
                && !md.is_file()
            {
                v.add(
                    "journal.path",
                    &format!(
                        "{} (the kiosk's lock file) is {}: remove it, it must be a regular file",
                        lock.display(),
                        kind_of(&md)
                    ),
                );
            }
        }

        let logs = &self.logs.dir;
        if !logs.as_os_str().is_empty() {
            let allowed = "must be a directory, or not exist yet under a directory";
            match std::fs::metadata(logs) {
                Ok(md) if !md.is_dir() => v.add(
                    "logs.dir",
                    &format!("{} is {} ({allowed})", logs.display(), kind_of(&md)),
                ),
                Ok(_) => {}
                Err(e) if missing(&e) => {
                    if let Some(why) = creatable(logs) {
                        v.add(
                            "logs.dir",
                            &format!("{}: {why} ({allowed})", logs.display()),
                        );
                    }
                }
                Err(e) => v.add(
                    "logs.dir",
                    &format!("{}: {} ({allowed})", logs.display(), io_why(&e)),
                ),
            }
        }

        let ports: Vec<(String, &std::path::Path)> = if self.boards.is_empty() {
            vec![("board.port".to_owned(), self.board.port.as_path())]
        } else {
            self.boards
                .iter()
                .enumerate()
                .map(|(i, b)| (format!("boards[{i}].port"), b.port.as_path()))
                .collect()
        };
        for (field, port) in ports {
            use std::os::unix::fs::FileTypeExt as _;
            if !port.is_absolute() {
                continue;
            }
            // Missing is allowed: an unplugged adapter's udev symlink comes back with it.
            if let Ok(md) = std::fs::metadata(port)
                && !md.file_type().is_char_device()
            {
                v.add(
                    &field,
                    &format!(
                        "{} is {} (must be a serial device: a character device such as the \
                         board's udev symlink, or not exist while the adapter is unplugged)",
                        port.display(),
                        kind_of(&md)
                    ),
                );
            }
        }
        v.problems
    }
}

/// "a directory", "a character device", ... for messages about a path.
fn kind_of(md: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = md.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The path is not there: it, or a directory on the way, does not exist (or a file
/// stands where a directory would have to be, which [`creatable`] then names).
fn missing(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// An I/O error without the "(os error N)" noise.
fn io_why(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Why `path` (which does not exist) could not be created with its missing parent
/// directories, or `None` when its nearest existing ancestor is a directory.
fn creatable(path: &Path) -> Option<String> {
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(d) {
            Ok(md) if md.is_dir() => return None,
            Ok(md) => {
                return Some(format!(
                    "{} is {}, so nothing can be created under it",
                    d.display(),
                    kind_of(&md)
                ));
            }
            Err(e) if missing(&e) => dir = d.parent(),
            Err(e) => return Some(format!("{}: {}", d.display(), io_why(&e))),
        }
    }
    // A relative path with no existing ancestor lives in the current directory.
    None
}
