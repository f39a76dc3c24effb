//! Where the last `recv` stopped: a sequence number in a small file in the
//! profile's data directory (`qpq-ctl.seq`, or `qpq-ctl-<id>.seq` for a
//! `--conversation` view, and `qpq-ctl-mentions….seq` for `--mentions`, so
//! a filtered recv never hides messages from an unfiltered one). Replaced atomically (write, then rename): a crash leaves
//! the old number or the new one, so at worst a message is printed twice,
//! never skipped.

use std::io;
use std::path::{Path, PathBuf};

use quicproquo_protocol::ipc::values::{ConversationId, Seq};

use crate::error::CtlError;

#[derive(Debug, Clone)]
pub struct Cursor {
    path: PathBuf,
}

impl Cursor {
    pub fn new(data_dir: &Path, only: Option<ConversationId>, mentions: bool) -> Cursor {
        let view = if mentions { "-mentions" } else { "" };
        let file = match only {
            None => format!("qpq-ctl{view}.seq"),
            Some(id) => format!("qpq-ctl{view}-{id}.seq"),
        };
        Cursor {
            path: data_dir.join(file),
        }
    }

    /// The saved sequence number; `None` before the first `recv`.
    pub async fn load(&self) -> Result<Option<Seq>, CtlError> {
        match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text.trim().parse().map(|n| Some(Seq(n))).map_err(|_| {
                CtlError::io(
                    format!("reading the recv cursor {}", self.path.display()),
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{:?} is not a sequence number; delete the file to start over, \
                             or pass --since",
                            text.trim()
                        ),
                    ),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CtlError::io(
                format!("reading the recv cursor {}", self.path.display()),
                e,
            )),
        }
    }

    pub async fn save(&self, seq: Seq) -> Result<(), CtlError> {
        let tmp = self
            .path
            .with_extension(format!("seq.{}.tmp", std::process::id()));
        let err = |e| CtlError::io(format!("saving the recv cursor {}", self.path.display()), e);
        tokio::fs::write(&tmp, format!("{}\n", seq.0))
            .await
            .map_err(err)?;
        tokio::fs::rename(&tmp, &self.path).await.map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saves_loads_and_refuses_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let all = Cursor::new(dir.path(), None, false);
        let one = Cursor::new(dir.path(), Some(ConversationId([0xab; 16])), false);
        let mentions = Cursor::new(dir.path(), None, true);
        assert_eq!(all.load().await.unwrap(), None);
        all.save(Seq(41)).await.unwrap();
        all.save(Seq(42)).await.unwrap();
        assert_eq!(all.load().await.unwrap(), Some(Seq(42)));
        assert_eq!(one.load().await.unwrap(), None, "views are separate");
        assert_eq!(mentions.load().await.unwrap(), None, "views are separate");
        mentions.save(Seq(7)).await.unwrap();
        assert!(dir.path().join("qpq-ctl-mentions.seq").is_file());
        assert_eq!(all.load().await.unwrap(), Some(Seq(42)));
        assert!(dir
            .path()
            .join(format!("qpq-ctl-{}.seq", "ab".repeat(16)))
            .to_str()
            .is_some());
        std::fs::write(dir.path().join("qpq-ctl.seq"), "junk").unwrap();
        let e = all.load().await.unwrap_err();
        assert!(e.to_string().contains("delete the file"), "{e}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
