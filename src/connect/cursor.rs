//! Where a Pulsar reader resumes: the last acknowledged `messageId`, kept
//! under `--data-dir`, and the watermark that decides which id that is when
//! acknowledgements complete out of order (pipelining across interactions).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The stored cursor of one topic.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Stored {
    /// The topic path (`/ws/v2/reader/persistent/…`) it belongs to; a cursor
    /// of another topic is not used.
    topic: String,
    /// The last acknowledged message id, as the broker sent it.
    message_id: String,
}

/// The cursor file of one reader topic.
#[derive(Debug, Clone)]
pub struct CursorStore {
    path: PathBuf,
    topic: String,
}

impl CursorStore {
    /// The cursor of `topic` in `data_dir`.
    pub fn new(data_dir: &Path, topic: &str) -> CursorStore {
        CursorStore { path: data_dir.join("8x8-event-streaming.cursor.json"), topic: topic.to_string() }
    }

    /// Where the cursor is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored message id, if there is one for this topic.
    pub fn load(&self) -> std::io::Result<Option<String>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display()))
        })?;
        if stored.topic != self.topic {
            tracing::warn!(
                path = %self.path.display(),
                stored = %stored.topic,
                topic = %self.topic,
                "the stored cursor belongs to another topic; starting from the URL's position"
            );
            return Ok(None);
        }
        Ok(Some(stored.message_id))
    }

    /// Replaces the stored id (write to a temporary file, then rename, so a
    /// crash leaves the old cursor or the new one, never half of one).
    pub async fn save(&self, message_id: &str) -> std::io::Result<()> {
        let stored = Stored { topic: self.topic.clone(), message_id: message_id.to_string() };
        let bytes = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = self.path.with_extension("json.tmp");
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, &self.path).await
    }
}

/// Tracks which received messages are acknowledged and yields the newest id
/// before which every message is acknowledged: resuming after it skips
/// nothing that is still in flight.
#[derive(Debug, Default)]
pub struct Watermark {
    next: u64,
    low: u64,
    done: BTreeMap<u64, String>,
}

impl Watermark {
    /// Registers a received message; returns its position.
    pub fn register(&mut self) -> u64 {
        let seq = self.next;
        self.next += 1;
        seq
    }

    /// Marks `seq` acknowledged; returns the new resume id when the
    /// contiguous acknowledged prefix grew.
    pub fn complete(&mut self, seq: u64, message_id: String) -> Option<String> {
        self.done.insert(seq, message_id);
        let mut advanced = None;
        while let Some(id) = self.done.remove(&self.low) {
            advanced = Some(id);
            self.low += 1;
        }
        advanced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_waits_for_the_oldest_unacknowledged_message() {
        let mut w = Watermark::default();
        let (a, b, c) = (w.register(), w.register(), w.register());
        assert_eq!(w.complete(b, "B".into()), None, "a is still in flight");
        assert_eq!(w.complete(a, "A".into()), Some("B".into()));
        assert_eq!(w.complete(c, "C".into()), Some("C".into()));
    }

    #[tokio::test]
    async fn a_saved_cursor_is_loaded_for_its_topic_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = CursorStore::new(dir.path(), "/ws/v2/reader/persistent/t/event-v1/all");
        assert_eq!(store.load().unwrap(), None);
        store.save("CAEQ4AE=").await.unwrap();
        assert_eq!(store.load().unwrap().as_deref(), Some("CAEQ4AE="));
        let other = CursorStore::new(dir.path(), "/ws/v2/reader/persistent/t/event-v1/other");
        assert_eq!(other.load().unwrap(), None);
    }
}
