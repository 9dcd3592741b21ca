//! Loading: the embedded defaults, the site file merged over them table by table,
//! shaped into [`Config`] and validated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, Problem};

/// The embedded defaults. Every field without a safe default is left out (see the
/// file's header); a test proves the rest is complete.
pub const DEFAULTS_TOML: &str = include_str!("../defaults.toml");

/// `kiosk.webkit_env` as the embedded defaults set it (for the demo, which has no site
/// file when the window app starts).
pub fn default_webkit_env() -> BTreeMap<String, String> {
    let table = parse_table(DEFAULTS_TOML, "embedded defaults").unwrap_or_default();
    table
        .get("kiosk")
        .and_then(|k| k.get("webkit_env"))
        .and_then(|w| w.as_table())
        .map(|w| {
            w.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Merges `over` into `base`, table by table: nested tables merge recursively, every
/// other value (including arrays such as `[[slots]]`) is replaced whole.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn parse_table(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
}

impl Config {
    /// Reads the site file at `path`, merges it over the embedded defaults and
    /// validates. Relative paths inside the file (`password_file`, `ca_file`,
    /// `journal.path`, `logs.dir`) are taken relative to the file's directory, so a
    /// config and its neighbours can be moved together.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let cfg = Config::read(path)?;
        cfg.check()?;
        Ok(cfg)
    }

    /// [`Config::load`] plus [`Config::check_host`]: everything that can be known
    /// before the kiosk starts, all problems at once. The one check `cabinet config
    /// check`, `cabinet run` and the window app share, so a file the check calls valid
    /// does not then fail to start; it runs before the instance lock is taken, so a bad
    /// `journal.path` leaves no lock file behind.
    pub fn load_for_start(path: &Path) -> Result<Config, ConfigError> {
        let cfg = Config::read(path)?;
        let mut problems = cfg.validate();
        problems.extend(cfg.check_host());
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Reads, merges and shapes the site file, with relative paths resolved; no rules.
    fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &path.display().to_string())?;
        if let Some(dir) = path.parent() {
            cfg.resolve_relative_paths(dir);
        }
        Ok(cfg)
    }

    /// Merges `site_toml` over the embedded defaults and validates.
    pub fn from_toml_str(site_toml: &str) -> Result<Config, ConfigError> {
        let cfg = Config::parse(site_toml, "config")?;
        cfg.check()?;
        Ok(cfg)
    }

    fn parse(site_toml: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut table = parse_table(DEFAULTS_TOML, "embedded defaults")?;
        merge(&mut table, parse_table(site_toml, origin)?);
        serde_path_to_error::deserialize::<_, Config>(table).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                "(top level)".to_owned()
            } else {
                path
            };
            ConfigError::Invalid(vec![Problem {
                field,
                // toml appends "in `table`" on a second line; the field path says it.
                message: e
                    .into_inner()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            }])
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        let problems = self.validate();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    fn resolve_relative_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = dir.join(&*p);
            }
        };
        if let Some(p) = self.mqtt.password_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.mqtt.ca_file.as_mut() {
            fix(p);
        }
        fix(&mut self.journal.path);
        if let Some(w) = &mut self.journal.witness_path {
            fix(w);
        }
        fix(&mut self.logs.dir);
    }
}
