//! TensorBoard event files (`events.out.tfevents.*`): scalars only.
//!
//! Framing (TFRecord): `u64 length (LE) · u32 masked crc32c(length) · data ·
//! u32 masked crc32c(data)`; both checksums are verified, a bad one is an
//! error naming the record and its byte offset. A final record cut short (a
//! run still writing) is dropped with a warning; the records before it are kept.
//!
//! Each record is an `Event` proto (tensorflow/core/util/event.proto), decoded
//! with the hand-written prost structs below (no protoc): `Event{wall_time=1,
//! step=2, summary=5}`, `Summary{value=1}`, `Summary.Value{tag=1,
//! simple_value=2, tensor=8}`, `TensorProto{dtype=1, tensor_content=4,
//! float_val=5, double_val=6, int_val=7, int64_val=10}`. A scalar is a
//! `simple_value` or a tensor holding exactly one number (TF2's
//! `tf.summary.scalar`, PyTorch's `add_scalar(new_style=True)`).
//!
//! Rows: one per event with a scalar; consecutive events with the same step
//! merge into one row when no tag would be written twice (TensorBoard writes
//! one event per tag and step). `wall_time` is kept as a metric.

use super::{LogError, LogFormat, RowBuilder, Series};
use prost::Message;

/// `tensorflow.Event` (the fields rankscope reads).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// Global step.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// `file_version` (the first event of a file).
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// The values logged at this step.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// One entry per tag.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The metric name (`train/loss`).
    #[prost(string, tag = "1")]
    pub tag: String,
    /// TF1 / `add_scalar` scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    /// TF2 scalar: a rank-0 tensor.
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
}

/// `tensorflow.TensorProto` (numeric payloads only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `DataType`: 1 float, 2 double, 3 int32, 9 int64, ….
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// Raw little-endian values.
    #[prost(bytes = "vec", tag = "4")]
    pub tensor_content: Vec<u8>,
    /// `DT_FLOAT` values.
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    /// `DT_DOUBLE` values.
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    /// `DT_INT32` (and smaller) values.
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    /// `DT_INT64` values.
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
}

const DT_FLOAT: i32 = 1;
const DT_DOUBLE: i32 = 2;
const DT_INT32: i32 = 3;
const DT_INT64: i32 = 9;

impl TensorProto {
    /// The single number this tensor holds; `None` for non-scalars.
    pub fn scalar(&self) -> Option<f64> {
        let one = |n: usize| n == 1;
        if one(self.float_val.len()) {
            return self.float_val.first().map(|&v| f64::from(v));
        }
        if one(self.double_val.len()) {
            return self.double_val.first().copied();
        }
        if one(self.int_val.len()) {
            return self.int_val.first().map(|&v| f64::from(v));
        }
        if one(self.int64_val.len()) {
            return self.int64_val.first().map(|&v| v as f64);
        }
        let c = self.tensor_content.as_slice();
        match (self.dtype, c.len()) {
            (DT_FLOAT, 4) => c.try_into().ok().map(|b| f64::from(f32::from_le_bytes(b))),
            (DT_DOUBLE, 8) => c.try_into().ok().map(f64::from_le_bytes),
            (DT_INT32, 4) => c.try_into().ok().map(|b| f64::from(i32::from_le_bytes(b))),
            (DT_INT64, 8) => c.try_into().ok().map(|b| i64::from_le_bytes(b) as f64),
            _ => None,
        }
    }
}

/// TFRecord's checksum: crc32c, rotated and offset so that a CRC of data
/// holding CRCs stays well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Whether `head` starts with a TFRecord whose length checksum is right.
pub fn looks_like(head: &[u8]) -> bool {
    match (head.get(0..8), head.get(8..12)) {
        (Some(len), Some(crc)) => {
            crc.try_into().ok().map(u32::from_le_bytes) == Some(masked_crc32c(len))
        }
        _ => false,
    }
}

/// Appends one TFRecord holding `data` to `out` (for tests and tools writing event files).
pub fn write_record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// The records of a TFRecord file; a cut-short final record ends the list
/// with a warning.
/// The records read (byte offset, data) and a warning when the last was cut short.
type Records<'a> = (Vec<(u64, &'a [u8])>, Option<String>);

fn records(bytes: &[u8]) -> Result<Records<'_>, LogError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let total = bytes.len() as u64;
    while pos < bytes.len() {
        let record = out.len();
        let offset = pos as u64;
        let truncated = |have: usize, need: u64| {
            if record == 0 {
                Err(LogError::Truncated {
                    record,
                    offset,
                    have: have as u64,
                    need,
                })
            } else {
                Ok(Some(format!(
                    "record {record} at byte {offset} is cut short ({have} of {need} bytes; the run may still be writing): kept the {record} records before it"
                )))
            }
        };
        let rest = &bytes[pos..];
        let (Some(len_bytes), Some(len_crc)) = (rest.get(0..8), rest.get(8..12)) else {
            return truncated(rest.len(), 12).map(|w| (out, w));
        };
        let len_crc = u32::from_le_bytes(len_crc.try_into().expect("4 bytes by the slice above"));
        if masked_crc32c(len_bytes) != len_crc {
            return Err(LogError::RecordCrc {
                record,
                offset,
                part: "length",
            });
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes by the slice above"));
        if len > total {
            // Not a record still being written: no file ever held it.
            if record == 0 {
                return Err(LogError::RecordTooLong {
                    record,
                    offset,
                    len,
                    total,
                });
            }
            let w = format!(
                "record {record} at byte {offset} claims {len} bytes, more than the whole file ({total} bytes): \
                 the file is damaged there; kept the {record} records before it"
            );
            return Ok((out, Some(w)));
        }
        let need = len.checked_add(16).filter(|&n| n <= total - offset);
        let Some(need) = need.and_then(|n| usize::try_from(n).ok()) else {
            return truncated(rest.len(), len.saturating_add(16)).map(|w| (out, w));
        };
        let data = &rest[12..need - 4];
        let data_crc = u32::from_le_bytes(
            rest[need - 4..need]
                .try_into()
                .expect("4 bytes by the length check"),
        );
        if masked_crc32c(data) != data_crc {
            return Err(LogError::RecordCrc {
                record,
                offset,
                part: "data",
            });
        }
        out.push((offset, data));
        pos += need;
    }
    Ok((out, None))
}

/// Reads the scalars of a TensorBoard event file.
pub fn parse(bytes: &[u8]) -> Result<Series, LogError> {
    let (records, cut) = records(bytes)?;
    let mut rows = RowBuilder::new(LogFormat::TfEvents, bytes.len());
    let mut non_scalar = std::collections::BTreeSet::new();
    let mut open_step: Option<i64> = None;
    for (record, (offset, data)) in records.iter().enumerate() {
        let event = Event::decode(*data).map_err(|e| LogError::BadEvent {
            record,
            offset: *offset,
            message: e.to_string(),
        })?;
        let Some(summary) = &event.summary else {
            continue;
        };
        let scalars: Vec<(&str, f64)> = summary
            .value
            .iter()
            .filter_map(|v| {
                let x = v
                    .simple_value
                    .map(f64::from)
                    .or_else(|| v.tensor.as_ref()?.scalar());
                if x.is_none() {
                    non_scalar.insert(v.tag.clone());
                }
                Some((v.tag.as_str(), x?))
            })
            .collect();
        if scalars.is_empty() {
            continue;
        }
        let merge =
            open_step == Some(event.step) && scalars.iter().all(|(tag, _)| !rows.has_in_row(tag));
        if !merge {
            rows.start_row();
            rows.set_step(event.step as f64);
            open_step = Some(event.step);
        }
        rows.set("wall_time", event.wall_time);
        for (tag, x) in scalars {
            rows.set(tag, x);
        }
    }
    if let Some(w) = &cut {
        rows.warn(w.clone());
    }
    if !non_scalar.is_empty() {
        let tags: Vec<String> = non_scalar.into_iter().collect();
        rows.warn(format!(
            "non-scalar summaries left out: {}",
            tags.join(", ")
        ));
    }
    if rows.rows() == 0 {
        let why = cut.map(|w| format!("; {w}")).unwrap_or_default();
        return Err(LogError::NoScalars(format!(
            "{} records{why}",
            records.len()
        )));
    }
    rows.finish("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_tensorflow() {
        // crc32c("123456789") = 0xE3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(
            masked_crc32c(b"123456789"),
            0xE306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn tensor_scalars() {
        let t = TensorProto {
            dtype: DT_FLOAT,
            tensor_content: 2.5f32.to_le_bytes().to_vec(),
            ..Default::default()
        };
        assert_eq!(t.scalar(), Some(2.5));
        let t = TensorProto {
            dtype: DT_FLOAT,
            float_val: vec![1.0, 2.0],
            ..Default::default()
        };
        assert_eq!(t.scalar(), None);
    }
}
