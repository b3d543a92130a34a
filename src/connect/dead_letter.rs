//! The dead-letter file: payloads Ingest rejected (INVALID_ARGUMENT), kept
//! whole so one bad message never blocks the stream and nothing is lost.
//!
//! One JSON object per line in `<data-dir>/dead-letters/<connector>.jsonl`:
//! `{"rejected_at", "connector", "code", "message", "violations", "frame"}`,
//! where `frame` is the vendor frame exactly as received (a string).

use std::path::{Path, PathBuf};

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Appends rejected frames to the connector's dead-letter file.
#[derive(Debug)]
pub struct DeadLetters {
    connector: &'static str,
    path: PathBuf,
    file: Mutex<Option<tokio::fs::File>>,
}

impl DeadLetters {
    /// The dead-letter file of `connector` under `data_dir` (created on the
    /// first rejection).
    pub fn new(data_dir: &Path, connector: &'static str) -> DeadLetters {
        let path = data_dir.join("dead-letters").join(format!("{connector}.jsonl"));
        DeadLetters { connector, path, file: Mutex::new(None) }
    }

    /// Where the dead letters go.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `frame` with the reason Ingest gave, and syncs it to disk
    /// before returning: the caller acknowledges the frame right after.
    pub async fn append(&self, frame: &[u8], status: &tonic::Status) -> std::io::Result<()> {
        let violations = crate::cli::field_violations_json(status);
        let line = json!({
            "rejected_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "connector": self.connector,
            "code": format!("{:?}", status.code()),
            "message": status.message(),
            "violations": violations,
            "frame": String::from_utf8_lossy(frame),
        });
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let mut guard = self.file.lock().await;
        let file = match &mut *guard {
            Some(file) => file,
            slot @ None => {
                if let Some(dir) = self.path.parent() {
                    tokio::fs::create_dir_all(dir).await?;
                }
                slot.insert(tokio::fs::OpenOptions::new().create(true).append(true).open(&self.path).await?)
            }
        };
        file.write_all(&bytes).await?;
        file.sync_data().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_one_line_per_rejection_with_the_frame_whole() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetters::new(dir.path(), "test");
        dl.append(br#"{"messageId":"a"}"#, &tonic::Status::invalid_argument("bad")).await.unwrap();
        dl.append(b"not json", &tonic::Status::invalid_argument("worse")).await.unwrap();
        let text = std::fs::read_to_string(dl.path()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["frame"], r#"{"messageId":"a"}"#);
        assert_eq!(lines[0]["code"], "InvalidArgument");
        assert_eq!(lines[1]["message"], "worse");
    }
}
