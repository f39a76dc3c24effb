//! The TUI's configuration in one typed struct: defaults, then the file
//! `$XDG_CONFIG_HOME/quicproquo/qpq-tui.toml`, validated once at start-up
//! with an error naming the key. Nothing else reads the file or the
//! environment.
//!
//! ```toml
//! bell = true                    # ring the terminal bell on a message elsewhere
//! mouse = true                   # the wheel scrolls (Shift+drag still selects)
//! default_server = "127.0.0.1:7443"
//! image_previews = true          # show image attachments inline (half-blocks)
//! preview_max_mib = 10           # download images up to this size by themselves
//! download_dir = "/home/me/Downloads"   # where the save key writes
//! graphics = "auto"             # previews through the terminal's graphics: "auto",
//!                                # "kitty", "iterm2", "sixel" or "halfblocks"
//! # kitty_graphics = false       # older key: false means graphics = "halfblocks"
//! [keys]                         # any action, one key or a list of keys
//! quit = ["ctrl+q"]
//! next_conversation = ["alt+down", "ctrl+n"]
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

/// What a key can be bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAction {
    Send,
    Newline,
    Quit,
    Help,
    NextConversation,
    PrevConversation,
    PageUp,
    PageDown,
    ToggleMembers,
    Complete,
    SelectOlder,
    SelectNewer,
    SaveAttachment,
    OpenAttachment,
}

impl KeyAction {
    pub const ALL: &'static [KeyAction] = &[
        KeyAction::Send,
        KeyAction::Newline,
        KeyAction::Quit,
        KeyAction::Help,
        KeyAction::NextConversation,
        KeyAction::PrevConversation,
        KeyAction::PageUp,
        KeyAction::PageDown,
        KeyAction::ToggleMembers,
        KeyAction::Complete,
        KeyAction::SelectOlder,
        KeyAction::SelectNewer,
        KeyAction::SaveAttachment,
        KeyAction::OpenAttachment,
    ];

    /// The name in the `[keys]` table.
    pub fn name(self) -> &'static str {
        match self {
            KeyAction::Send => "send",
            KeyAction::Newline => "newline",
            KeyAction::Quit => "quit",
            KeyAction::Help => "help",
            KeyAction::NextConversation => "next_conversation",
            KeyAction::PrevConversation => "prev_conversation",
            KeyAction::PageUp => "page_up",
            KeyAction::PageDown => "page_down",
            KeyAction::ToggleMembers => "toggle_members",
            KeyAction::Complete => "complete",
            KeyAction::SelectOlder => "select_older",
            KeyAction::SelectNewer => "select_newer",
            KeyAction::SaveAttachment => "save_attachment",
            KeyAction::OpenAttachment => "open_attachment",
        }
    }

    /// For the help screen.
    pub fn describe(self) -> &'static str {
        match self {
            KeyAction::Send => "send the message",
            KeyAction::Newline => "insert a line break",
            KeyAction::Quit => "quit",
            KeyAction::Help => "this help",
            KeyAction::NextConversation => "next conversation",
            KeyAction::PrevConversation => "previous conversation",
            KeyAction::PageUp => "scroll back a page",
            KeyAction::PageDown => "scroll forward a page",
            KeyAction::ToggleMembers => "show/hide the member panel",
            KeyAction::Complete => "complete a command or username",
            KeyAction::SelectOlder => "select a message (older): then r e c d h o s v",
            KeyAction::SelectNewer => "select the next newer message",
            KeyAction::SaveAttachment => "on a selected attachment: save it to downloads",
            KeyAction::OpenAttachment => "on a selected attachment: open it",
        }
    }

    fn defaults(self) -> &'static [&'static str] {
        match self {
            KeyAction::Send => &["enter"],
            KeyAction::Newline => &["alt+enter", "shift+enter"],
            KeyAction::Quit => &["ctrl+q"],
            KeyAction::Help => &["f1"],
            KeyAction::NextConversation => &["alt+down", "ctrl+n"],
            KeyAction::PrevConversation => &["alt+up", "ctrl+p"],
            KeyAction::PageUp => &["pageup"],
            KeyAction::PageDown => &["pagedown"],
            KeyAction::ToggleMembers => &["f2"],
            KeyAction::Complete => &["tab"],
            KeyAction::SelectOlder => &["shift+up"],
            KeyAction::SelectNewer => &["shift+down"],
            KeyAction::SaveAttachment => &["s"],
            KeyAction::OpenAttachment => &["v"],
        }
    }
}

/// A key with its modifiers, as written in the config (`ctrl+q`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    /// Parses `ctrl+alt+x`, `shift+enter`, `f1`, `pageup`, `a`.
    pub fn parse(s: &str) -> Result<Key, String> {
        let lower = s.trim().to_ascii_lowercase();
        let mut parts: Vec<&str> = lower.split('+').collect();
        // `ctrl++` binds the plus key.
        if lower.ends_with("++") {
            parts.truncate(parts.len() - 2);
            parts.push("+");
        }
        let Some(name) = parts.pop().filter(|n| !n.is_empty()) else {
            return Err(format!("{s:?} names no key"));
        };
        let mut mods = KeyModifiers::NONE;
        for m in parts {
            mods |= match m {
                "ctrl" | "control" | "c" => KeyModifiers::CONTROL,
                "alt" | "meta" | "m" => KeyModifiers::ALT,
                "shift" | "s" => KeyModifiers::SHIFT,
                other => return Err(format!("unknown modifier {other:?} in {s:?}")),
            };
        }
        let code = match name {
            "enter" | "return" => KeyCode::Enter,
            "tab" => KeyCode::Tab,
            "backtab" => KeyCode::BackTab,
            "esc" | "escape" => KeyCode::Esc,
            "backspace" => KeyCode::Backspace,
            "delete" | "del" => KeyCode::Delete,
            "insert" => KeyCode::Insert,
            "up" => KeyCode::Up,
            "down" => KeyCode::Down,
            "left" => KeyCode::Left,
            "right" => KeyCode::Right,
            "home" => KeyCode::Home,
            "end" => KeyCode::End,
            "pageup" | "pgup" => KeyCode::PageUp,
            "pagedown" | "pgdn" => KeyCode::PageDown,
            "space" => KeyCode::Char(' '),
            f if f.len() > 1 && f.starts_with('f') => {
                let n: u8 = f[1..]
                    .parse()
                    .ok()
                    .filter(|n| (1..=24).contains(n))
                    .ok_or_else(|| format!("unknown key {name:?} in {s:?}"))?;
                KeyCode::F(n)
            }
            c if c.chars().count() == 1 => KeyCode::Char(c.chars().next().unwrap_or(' ')),
            other => return Err(format!("unknown key {other:?} in {s:?}")),
        };
        Ok(Key { code, mods })
    }

    /// The key of a terminal event, normalized so that `Shift+a` arrives as
    /// `A` without SHIFT (terminals differ in whether they report it).
    pub fn from_event(ev: &KeyEvent) -> Key {
        let mut mods =
            ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let mut code = ev.code;
        if let KeyCode::Char(c) = code {
            if mods.contains(KeyModifiers::CONTROL) || mods.contains(KeyModifiers::ALT) {
                code = KeyCode::Char(c.to_ascii_lowercase());
            }
            mods.remove(KeyModifiers::SHIFT);
        }
        if code == KeyCode::BackTab {
            mods.remove(KeyModifiers::SHIFT);
        }
        Key { code, mods }
    }

    /// For the help screen: `Ctrl+Q`, `Alt+Enter`.
    pub fn label(&self) -> String {
        let mut out = String::new();
        for (m, name) in [
            (KeyModifiers::CONTROL, "Ctrl+"),
            (KeyModifiers::ALT, "Alt+"),
            (KeyModifiers::SHIFT, "Shift+"),
        ] {
            if self.mods.contains(m) {
                out.push_str(name);
            }
        }
        match self.code {
            KeyCode::Char(' ') => out.push_str("Space"),
            KeyCode::Char(c) => out.push(c.to_ascii_uppercase()),
            KeyCode::F(n) => out.push_str(&format!("F{n}")),
            KeyCode::PageUp => out.push_str("PgUp"),
            KeyCode::PageDown => out.push_str("PgDn"),
            other => out.push_str(&format!("{other:?}")),
        }
        out
    }
}

/// Which action each key triggers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMap {
    map: HashMap<Key, KeyAction>,
}

impl KeyMap {
    pub fn action(&self, ev: &KeyEvent) -> Option<KeyAction> {
        self.map.get(&Key::from_event(ev)).copied()
    }

    /// The keys bound to `action`, sorted for display.
    pub fn keys_for(&self, action: KeyAction) -> Vec<Key> {
        let mut keys: Vec<Key> = self
            .map
            .iter()
            .filter(|(_, a)| **a == action)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_by_key(Key::label);
        keys
    }

    /// The first key bound to `action`, for hints ("F1 help").
    pub fn hint(&self, action: KeyAction) -> String {
        self.keys_for(action)
            .first()
            .map_or_else(|| "—".to_owned(), Key::label)
    }
}

impl Default for KeyMap {
    fn default() -> Self {
        let mut map = HashMap::new();
        for &action in KeyAction::ALL {
            for k in action.defaults() {
                if let Ok(key) = Key::parse(k) {
                    map.insert(key, action);
                }
            }
        }
        KeyMap { map }
    }
}

/// The TUI's settings after merging defaults and the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bell: bool,
    pub mouse: bool,
    /// Offered on the first-run screen.
    pub default_server: String,
    pub keys: KeyMap,
    /// Image attachments previewed inline (and downloaded for it).
    pub image_previews: bool,
    /// Images up to this many bytes are downloaded for their preview.
    pub preview_max_bytes: u64,
    /// Where the save key writes (`None`: `$XDG_DOWNLOAD_DIR`,
    /// `~/Downloads`, the working directory).
    pub download_dir: Option<PathBuf>,
    /// Which terminal graphics previews use (`auto`: what the environment
    /// names; see [`crate::graphics::detect`]).
    pub graphics: crate::graphics::Setting,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bell: true,
            mouse: true,
            default_server: "127.0.0.1:7443".to_owned(),
            keys: KeyMap::default(),
            image_previews: true,
            preview_max_bytes: 10 << 20,
            download_dir: None,
            graphics: crate::graphics::Setting::Auto,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("{}: invalid `{key}`: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bell: Option<bool>,
    /// Read and ignored: desktop notifications are qpqd's now (its
    /// notifier; `qpq-ctl settings`). Kept so older files still load.
    #[serde(rename = "desktop_notifications")]
    _desktop_notifications: Option<bool>,
    mouse: Option<bool>,
    default_server: Option<String>,
    image_previews: Option<bool>,
    preview_max_mib: Option<u64>,
    download_dir: Option<PathBuf>,
    graphics: Option<crate::graphics::Setting>,
    /// The older switch for kitty's graphics, still read: `false` turns
    /// terminal graphics off when `graphics` is not given.
    kitty_graphics: Option<bool>,
    #[serde(default)]
    keys: HashMap<String, OneOrMany>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The config file's name inside the config directory.
pub const FILE_NAME: &str = "qpq-tui.toml";

impl Config {
    /// Reads `dir/qpq-tui.toml` if it exists.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    /// Parses the file's text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut config = Config::default();
        config.bell = file.bell.unwrap_or(config.bell);
        config.mouse = file.mouse.unwrap_or(config.mouse);
        if let Some(server) = file.default_server {
            config.default_server = server;
        }
        config.image_previews = file.image_previews.unwrap_or(config.image_previews);
        config.graphics = match (file.graphics, file.kitty_graphics) {
            (Some(g), _) => g,
            (None, Some(false)) => crate::graphics::Setting::Halfblocks,
            (None, _) => config.graphics,
        };
        if let Some(mib) = file.preview_max_mib {
            if mib > 1024 {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    key: "preview_max_mib".into(),
                    reason: "at most 1024".into(),
                });
            }
            config.preview_max_bytes = mib << 20;
        }
        if let Some(dir) = file.download_dir {
            if !dir.is_absolute() {
                return Err(ConfigError::Invalid {
                    path: path.to_owned(),
                    key: "download_dir".into(),
                    reason: "an absolute path is needed".into(),
                });
            }
            config.download_dir = Some(dir);
        }
        for (name, keys) in file.keys {
            let invalid = |reason: String| ConfigError::Invalid {
                path: path.to_owned(),
                key: format!("keys.{name}"),
                reason,
            };
            let action = KeyAction::ALL
                .iter()
                .copied()
                .find(|a| a.name() == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = KeyAction::ALL.iter().map(|a| a.name()).collect();
                    invalid(format!("no such action; actions are {}", names.join(", ")))
                })?;
            let keys = match keys {
                OneOrMany::One(k) => vec![k],
                OneOrMany::Many(ks) => ks,
            };
            // A rebound action loses its default keys.
            config.keys.map.retain(|_, a| *a != action);
            for k in keys {
                let key = Key::parse(&k).map_err(invalid)?;
                config.keys.map.insert(key, action);
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crossterm::event::KeyEventKind;

    use super::*;

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        let mut e = KeyEvent::new(code, mods);
        e.kind = KeyEventKind::Press;
        e
    }

    #[test]
    fn default_bindings() {
        let k = KeyMap::default();
        assert_eq!(
            k.action(&ev(KeyCode::Char('q'), KeyModifiers::CONTROL)),
            Some(KeyAction::Quit)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Enter, KeyModifiers::ALT)),
            Some(KeyAction::Newline)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Enter, KeyModifiers::SHIFT)),
            Some(KeyAction::Newline)
        );
        assert_eq!(
            k.action(&ev(KeyCode::Enter, KeyModifiers::NONE)),
            Some(KeyAction::Send)
        );
        // Caps lock or a terminal reporting SHIFT does not change Ctrl+Q.
        assert_eq!(
            k.action(&ev(
                KeyCode::Char('Q'),
                KeyModifiers::CONTROL | KeyModifiers::SHIFT
            )),
            Some(KeyAction::Quit)
        );
        assert_eq!(k.action(&ev(KeyCode::Char('q'), KeyModifiers::NONE)), None);
    }

    #[test]
    fn file_overrides_and_errors_name_the_key() {
        let path = Path::new("qpq-tui.toml");
        let c = Config::parse(
            "bell = false\n[keys]\nquit = \"ctrl+x\"\nhelp = [\"f1\", \"ctrl+h\"]\n",
            path,
        )
        .unwrap();
        assert!(!c.bell);
        assert_eq!(
            c.keys
                .action(&ev(KeyCode::Char('x'), KeyModifiers::CONTROL)),
            Some(KeyAction::Quit)
        );
        assert_eq!(
            c.keys
                .action(&ev(KeyCode::Char('q'), KeyModifiers::CONTROL)),
            None
        );
        assert_eq!(
            c.keys
                .action(&ev(KeyCode::Char('h'), KeyModifiers::CONTROL)),
            Some(KeyAction::Help)
        );
        let e = Config::parse("[keys]\nquit = \"hyper+x\"\n", path).unwrap_err();
        assert!(e.to_string().contains("keys.quit"), "{e}");
        let e = Config::parse("[keys]\nfly = \"x\"\n", path).unwrap_err();
        assert!(e.to_string().contains("keys.fly"), "{e}");
        assert!(Config::parse("colour = 1\n", path).is_err());
        let c = Config::parse(
            "image_previews = false\npreview_max_mib = 2\ndownload_dir = \"/tmp/dl\"\n",
            path,
        )
        .unwrap();
        assert!(!c.image_previews);
        assert_eq!(c.preview_max_bytes, 2 << 20);
        assert_eq!(c.download_dir.as_deref(), Some(Path::new("/tmp/dl")));
        let e = Config::parse("download_dir = \"dl\"\n", path).unwrap_err();
        assert!(e.to_string().contains("download_dir"), "{e}");
        assert!(Config::parse("preview_max_mib = 4096\n", path).is_err());
    }

    #[test]
    fn graphics_is_chosen_and_the_older_kitty_switch_still_works() {
        use crate::graphics::Setting;
        let path = Path::new("/x/qpq-tui.toml");
        let graphics = |text: &str| Config::parse(text, path).map(|c| c.graphics);
        assert_eq!(graphics("").unwrap(), Setting::Auto);
        for (name, want) in [
            ("auto", Setting::Auto),
            ("kitty", Setting::Kitty),
            ("iterm2", Setting::Iterm2),
            ("sixel", Setting::Sixel),
            ("halfblocks", Setting::Halfblocks),
        ] {
            assert_eq!(graphics(&format!("graphics = \"{name}\"\n")).unwrap(), want);
        }
        let e = graphics("graphics = \"ascii\"\n").unwrap_err();
        assert!(e.to_string().contains("graphics"), "{e}");
        // `kitty_graphics = false` meant no terminal graphics: it still
        // does, unless `graphics` says otherwise.
        assert_eq!(
            graphics("kitty_graphics = false\n").unwrap(),
            Setting::Halfblocks
        );
        assert_eq!(graphics("kitty_graphics = true\n").unwrap(), Setting::Auto);
        assert_eq!(
            graphics("kitty_graphics = false\ngraphics = \"sixel\"\n").unwrap(),
            Setting::Sixel
        );
    }

    #[test]
    fn key_labels() {
        assert_eq!(Key::parse("ctrl+q").unwrap().label(), "Ctrl+Q");
        assert_eq!(Key::parse("alt+enter").unwrap().label(), "Alt+Enter");
        assert_eq!(Key::parse("F1").unwrap().label(), "F1");
        assert_eq!(Key::parse("ctrl++").unwrap().code, KeyCode::Char('+'));
    }
}
