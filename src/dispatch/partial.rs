//! Partial batch responses: which records a function reported as failed.
//!
//! <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>
//! and the reference, section 3.5.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use trigger_bridge_sdk::{ItemId, Record};

/// What a function's answer says about its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemFailures {
    /// Empty or null `batchItemFailures`, an empty or null answer.
    None,
    /// Indices of the named records, ascending, without duplicates.
    Some(Vec<usize>),
    /// Unparseable, or an identifier that is empty, null, misnamed or not in
    /// the batch: Lambda fails the whole batch.
    Invalid(&'static str),
}

#[derive(Deserialize)]
struct Answer {
    #[serde(rename = "batchItemFailures", default)]
    failures: Option<Vec<Value>>,
}

/// Reads `batchItemFailures` from `body` against `records`.
pub fn parse(body: &[u8], records: &[Record]) -> ItemFailures {
    // Only an object (or null) is an answer; serde would read an array
    // into the struct as well.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return ItemFailures::None,
        Some(b'{' | b'n') => {}
        Some(_) => return ItemFailures::Invalid("the answer is not a JSON object"),
    }
    let answer: Option<Answer> = match serde_json::from_slice(body) {
        Ok(answer) => answer,
        Err(_) => return ItemFailures::Invalid("the answer is not a JSON object"),
    };
    let failures = match answer.and_then(|a| a.failures) {
        None => return ItemFailures::None,
        Some(f) if f.is_empty() => return ItemFailures::None,
        Some(f) => f,
    };

    // Several records may share an identifier: naming it names them all.
    let mut index: HashMap<&ItemId, Vec<usize>> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        if let Some(id) = record.item_id() {
            index.entry(id).or_default().push(i);
        }
    }
    let mut failed = Vec::with_capacity(failures.len());
    for item in &failures {
        let Some(identifier) = item.get("itemIdentifier") else {
            return ItemFailures::Invalid("an item has no `itemIdentifier`");
        };
        let Some(id) = item_id(identifier) else {
            return ItemFailures::Invalid("an `itemIdentifier` is empty, null or malformed");
        };
        match index.get(&id) {
            Some(indices) => failed.extend_from_slice(indices),
            None => {
                return ItemFailures::Invalid("an `itemIdentifier` names no record of the batch");
            }
        }
    }
    failed.sort_unstable();
    failed.dedup();
    ItemFailures::Some(failed)
}

fn item_id(value: &Value) -> Option<ItemId> {
    match value {
        Value::String(s) if !s.is_empty() => Some(ItemId::Text(s.as_str().into())),
        Value::Object(o) => {
            let partition = o.get("partition")?.as_str().filter(|p| !p.is_empty())?;
            let offset = o.get("offset")?;
            // Offsets come as numbers; accept a numeric string as well.
            let offset = offset
                .as_i64()
                .or_else(|| offset.as_str().and_then(|s| s.parse().ok()))?;
            Some(ItemId::KafkaOffset {
                partition: partition.into(),
                offset,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use bytes::Bytes;
    use trigger_bridge_sdk::AckHandle;

    use super::*;

    fn records(ids: &[ItemId]) -> Vec<Record> {
        ids.iter()
            .map(|id| {
                Record::new(
                    Bytes::from_static(b"{}"),
                    SystemTime::UNIX_EPOCH,
                    AckHandle::detached(),
                )
                .with_item_id(id.clone())
            })
            .collect()
    }

    fn text(ids: &[&str]) -> Vec<Record> {
        records(
            &ids.iter()
                .map(|s| ItemId::Text((*s).into()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn empty_and_null_answers_mean_every_record_succeeded() {
        let batch = text(&["a", "b"]);
        for body in [
            "",
            "  ",
            "null",
            "{}",
            r#"{"batchItemFailures":null}"#,
            r#"{"batchItemFailures":[]}"#,
            r#"{"other":1}"#,
        ] {
            assert_eq!(parse(body.as_bytes(), &batch), ItemFailures::None, "{body}");
        }
    }

    #[test]
    fn named_records_fail_in_batch_order() {
        let batch = text(&["a", "b", "c"]);
        let body = br#"{"batchItemFailures":[{"itemIdentifier":"c"},{"itemIdentifier":"a"},
            {"itemIdentifier":"c"}]}"#;
        assert_eq!(parse(body, &batch), ItemFailures::Some(vec![0, 2]));
    }

    #[test]
    fn malformed_answers_fail_the_whole_batch() {
        let batch = text(&["a", "b"]);
        for body in [
            "not json",
            "[1,2]",
            r#""ok""#,
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"ItemIdentifier":"a"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"zzz"}]}"#,
            r#"{"batchItemFailures":"a"}"#,
        ] {
            assert!(
                matches!(parse(body.as_bytes(), &batch), ItemFailures::Invalid(_)),
                "{body}"
            );
        }
    }

    #[test]
    fn kafka_identifiers_are_partition_and_offset() {
        let batch = records(&[
            ItemId::KafkaOffset {
                partition: "t-0".into(),
                offset: 5,
            },
            ItemId::KafkaOffset {
                partition: "t-0".into(),
                offset: 6,
            },
        ]);
        let ok = br#"{"batchItemFailures":[{"itemIdentifier":{"partition":"t-0","offset":6}}]}"#;
        let wrong = br#"{"batchItemFailures":[{"itemIdentifier":{"partition":"t-1","offset":6}}]}"#;
        let plain = br#"{"batchItemFailures":[{"itemIdentifier":"6"}]}"#;
        assert_eq!(parse(ok, &batch), ItemFailures::Some(vec![1]));
        assert!(matches!(parse(wrong, &batch), ItemFailures::Invalid(_)));
        assert!(matches!(parse(plain, &batch), ItemFailures::Invalid(_)));
    }

    #[test]
    fn records_without_identifiers_cannot_be_named() {
        let batch = vec![Record::new(
            Bytes::from_static(b"{}"),
            SystemTime::UNIX_EPOCH,
            AckHandle::detached(),
        )];
        let body = br#"{"batchItemFailures":[{"itemIdentifier":"x"}]}"#;
        assert!(matches!(parse(body, &batch), ItemFailures::Invalid(_)));
    }
}
