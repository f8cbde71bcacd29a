//! The `file` dead-letter sink: one on-failure record per failed batch, as a
//! JSON line, fsynced before the write is reported done.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use futures::{FutureExt, future::BoxFuture};
use trigger_bridge_sdk::{DeadLetterError, DeadLetterSink, FailedBatch};

/// Appends to one file. Pipelines naming the same path share one sink, so
/// their lines never interleave.
#[derive(Debug, Clone)]
pub struct FileSink {
    path: Arc<PathBuf>,
    file: Arc<Mutex<File>>,
}

impl FileSink {
    /// Opens `path` for appending, creating it and its parent directories.
    pub fn open(path: &Path) -> io::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: Arc::new(path.to_owned()),
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DeadLetterSink for FileSink {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn write<'a>(
        &'a self,
        batch: &'a FailedBatch<'a>,
    ) -> BoxFuture<'a, Result<(), DeadLetterError>> {
        let records = batch.records.len();
        // The file keeps the event: nothing else holds the records any more.
        let mut line = batch.on_failure_record(true).into_bytes();
        line.push(b'\n');
        let file = self.file.clone();
        let path = self.path.clone();
        async move {
            let written = tokio::task::spawn_blocking(move || append(&file, &line)).await;
            let error = match written {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            Err(DeadLetterError {
                kind: "file",
                records,
                message: format!("{}: {error}", path.display()),
            })
        }
        .boxed()
    }
}

/// Appends `line` and syncs it to disk. A failed write is cut off again, so a
/// partial line never precedes the next one.
fn append(file: &Mutex<File>, line: &[u8]) -> io::Result<()> {
    let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
    let before = file.metadata()?.len();
    let result = file.write_all(line).and_then(|()| file.sync_data());
    if result.is_err() {
        let _ = file.set_len(before);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;
    use chrono::Utc;
    use trigger_bridge_sdk::{AckHandle, Condition, Envelope, Family, Record};

    use super::*;

    #[tokio::test]
    async fn appends_one_on_failure_record_per_line() {
        let dir = std::env::temp_dir().join(format!("tb-file-sink-{}", uuid::Uuid::new_v4()));
        let sink = FileSink::open(&dir.join("nested/dlq.jsonl")).expect("sink opens");
        let envelope = Envelope::records();
        let records = [Record::new(
            Bytes::from_static(br#"{"n":1}"#),
            SystemTime::now(),
            AckHandle::detached(),
        )];
        let batch = FailedBatch {
            pipeline: "p",
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
            family: Family::Queue,
            condition: Condition::RetriesExhausted,
            invoke_count: 3,
            request_id: None,
            response: None,
            envelope: &envelope,
            records: &records,
            batch_info: None,
            timestamp: Utc::now(),
        };

        sink.write(&batch).await.expect("first write");
        sink.write(&batch).await.expect("second write");

        let text = std::fs::read_to_string(sink.path()).expect("file readable");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(lines[0]["requestPayload"]["Records"][0]["n"], 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
