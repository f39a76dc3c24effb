//! How the daemon notifies: read once at start from the profile's
//! `qpqd.toml` (`<config dir>/<profile>/qpqd.toml`) and the environment
//! `main` passes in.
//!
//! ```toml
//! desktop = true                                  # D-Bus, where there is a session bus
//! notify_command = ["notify-hook", "--quiet"]     # an argv, run with JSON on stdin
//! ```
//!
//! `QPQ_NOTIFY_COMMAND` (a JSON array of strings) replaces `notify_command`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quicproquo_protocol::paths::Paths;
use serde::Deserialize;

/// The file's name in the profile's configuration directory.
pub const FILE_NAME: &str = "qpqd.toml";

/// How long a notify command may run before it is killed.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(10);

/// The notifier's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Desktop notifications over D-Bus (when there is a session bus).
    pub desktop: bool,
    /// The session bus address (`DBUS_SESSION_BUS_ADDRESS`), if any.
    pub session_bus: Option<String>,
    /// An argv run for each notification, with its JSON on stdin.
    pub command: Option<Vec<String>>,
    pub command_deadline: Duration,
}

impl Config {
    /// Nothing notifies (a configuration that could not be read turns
    /// notifications off rather than guessing what it meant).
    pub fn off() -> Self {
        Config {
            desktop: false,
            session_bus: None,
            command: None,
            command_deadline: COMMAND_DEADLINE,
        }
    }

    /// The configuration from the file's text (if there is a file) and
    /// `QPQ_NOTIFY_COMMAND` (if set).
    pub fn parse(
        file: Option<(&str, &Path)>,
        env_command: Option<&str>,
        session_bus: Option<String>,
    ) -> Result<Self, ConfigError> {
        let file_config: FileConfig = match file {
            Some((text, path)) => toml::from_str(text).map_err(|e| ConfigError::File {
                path: path.to_owned(),
                reason: e.message().to_owned(),
            })?,
            None => FileConfig::default(),
        };
        let command = match env_command {
            Some(json) => Some(
                serde_json::from_str::<Vec<String>>(json)
                    .map_err(|e| ConfigError::Env(e.to_string()))?,
            ),
            None => file_config.notify_command,
        };
        if let Some(argv) = &command {
            if argv.first().is_none_or(|p| p.is_empty()) {
                return Err(ConfigError::EmptyCommand);
            }
        }
        Ok(Config {
            desktop: file_config.desktop.unwrap_or(true),
            session_bus: session_bus.filter(|a| !a.is_empty()),
            command,
            command_deadline: COMMAND_DEADLINE,
        })
    }

    /// [`Config::parse`] of the profile's file (none is no error).
    pub fn load(
        path: &Path,
        env_command: Option<&str>,
        session_bus: Option<String>,
    ) -> Result<Self, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(Some((&text, path)), env_command, session_bus),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Self::parse(None, env_command, session_bus)
            }
            Err(e) => Err(ConfigError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

/// Where a profile's `qpqd.toml` is.
pub fn file(paths: &Paths) -> PathBuf {
    paths
        .config_dir
        .join(paths.profile.as_str())
        .join(FILE_NAME)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    desktop: Option<bool>,
    notify_command: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("QPQ_NOTIFY_COMMAND is not a JSON array of strings (like [\"notify-hook\", \"--quiet\"]): {0}")]
    Env(String),
    #[error("the notify command is empty: give at least the program to run")]
    EmptyCommand,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(file: Option<&str>, env: Option<&str>) -> Result<Config, ConfigError> {
        Config::parse(file.map(|t| (t, Path::new("qpqd.toml"))), env, None)
    }

    #[test]
    fn the_file_and_the_environment() {
        let none = parse(None, None).unwrap();
        assert!(none.desktop && none.command.is_none(), "desktop by default");
        let c = parse(
            Some("desktop = false\nnotify_command = [\"hook\", \"-q\"]"),
            None,
        )
        .unwrap();
        assert!(!c.desktop);
        assert_eq!(c.command.unwrap(), ["hook", "-q"]);
        let c = parse(
            Some("notify_command = [\"hook\"]"),
            Some(r#"["other", "a b"]"#),
        )
        .unwrap();
        assert_eq!(c.command.unwrap(), ["other", "a b"], "the environment wins");
    }

    #[test]
    fn a_bad_configuration_is_an_error_that_says_where() {
        let e = parse(Some("desktp = false"), None).unwrap_err().to_string();
        assert!(e.contains("qpqd.toml") && e.contains("desktp"), "{e}");
        let e = parse(None, Some("notify-send")).unwrap_err().to_string();
        assert!(e.contains("QPQ_NOTIFY_COMMAND"), "{e}");
        assert!(matches!(
            parse(Some("notify_command = []"), None),
            Err(ConfigError::EmptyCommand)
        ));
        assert!(matches!(
            parse(None, Some(r#"[""]"#)),
            Err(ConfigError::EmptyCommand)
        ));
    }
}
