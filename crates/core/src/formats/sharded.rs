//! Sharded checkpoints: the Hugging Face `model.safetensors.index.json` that
//! says which shard file holds each tensor:
//! `{"metadata": {"total_size": …}, "weight_map": {"<tensor>": "model-00001-of-00002.safetensors"}}`.
//!
//! Shard names are compared by their last path component, so
//! `"sub/model-00001.safetensors"` in the index matches a dropped
//! `model-00001.safetensors`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::safetensors::Header;

/// A parsed shard index.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShardIndex {
    /// The `metadata` object as written (empty if absent), e.g. `total_size`.
    pub metadata: serde_json::Map<String, Value>,
    /// Tensor name → shard file name.
    pub weight_map: BTreeMap<String, String>,
}

/// Everything that can be wrong with a shard index or a set of shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum ShardError {
    #[error("shard index is not valid JSON: {message}")]
    NotJson { message: String },
    #[error("shard index must be a JSON object with a \"weight_map\"")]
    NotObject,
    #[error("shard index has no \"weight_map\" (the map from tensor names to shard files)")]
    MissingWeightMap,
    #[error("\"weight_map\" must be an object mapping tensor names to shard file names")]
    WeightMapNotObject,
    #[error("\"weight_map\" entry for tensor \"{tensor}\" must be a shard file name (a string)")]
    ShardNameNotString { tensor: String },
    #[error("shard index \"metadata\" must be an object")]
    MetadataNotObject,
    #[error("tensor \"{tensor}\" is mapped to shard \"{shard}\" but that shard's header does not contain it")]
    TensorMissing { tensor: String, shard: String },
    #[error("tensor \"{tensor}\" is stored in two shards: \"{first}\" and \"{second}\"")]
    TensorInTwoShards {
        tensor: String,
        first: String,
        second: String,
    },
}

/// Parses a `model.safetensors.index.json`.
pub fn parse_index(bytes: &[u8]) -> Result<ShardIndex, ShardError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ShardError::NotJson {
        message: e.to_string(),
    })?;
    let Value::Object(mut top) = value else {
        return Err(ShardError::NotObject);
    };
    let metadata = match top.remove("metadata") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ShardError::MetadataNotObject),
    };
    let map = match top.remove("weight_map") {
        None => return Err(ShardError::MissingWeightMap),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ShardError::WeightMapNotObject),
    };
    let mut weight_map = BTreeMap::new();
    for (tensor, shard) in map {
        match shard {
            Value::String(s) => {
                weight_map.insert(tensor, s);
            }
            _ => return Err(ShardError::ShardNameNotString { tensor }),
        }
    }
    Ok(ShardIndex {
        metadata,
        weight_map,
    })
}

/// Last path component of a shard name (`/` or `\` separated).
pub fn base_name(name: &str) -> &str {
    name.rsplit(['/', '\\']).next().unwrap_or(name)
}

impl ShardIndex {
    /// The distinct shard files the index refers to, sorted.
    pub fn shard_files(&self) -> Vec<String> {
        self.weight_map
            .values()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    /// The shard files of the index that are not among `present` (file names;
    /// compared by last path component), sorted.
    pub fn missing_shards(&self, present: &[&str]) -> Vec<String> {
        let present: BTreeSet<&str> = present.iter().map(|p| base_name(p)).collect();
        self.shard_files()
            .into_iter()
            .filter(|s| !present.contains(base_name(s)))
            .collect()
    }

    /// Checks the index against the headers of the given shards (file name,
    /// header): every tensor mapped to one of these shards is in its header,
    /// and no tensor is stored in two of them. Tensors mapped to shards that
    /// are not given are skipped: report those with [`Self::missing_shards`].
    pub fn check_against_headers(&self, shards: &[(&str, &Header)]) -> Result<(), ShardError> {
        let mut owner: HashMap<&str, &str> = HashMap::new();
        for (file, header) in shards {
            for t in &header.tensors {
                if let Some(first) = owner.insert(&t.name, file) {
                    return Err(ShardError::TensorInTwoShards {
                        tensor: t.name.clone(),
                        first: first.to_string(),
                        second: file.to_string(),
                    });
                }
            }
        }
        for (tensor, shard) in &self.weight_map {
            let Some((_, header)) = shards
                .iter()
                .find(|(f, _)| base_name(f) == base_name(shard))
            else {
                continue;
            };
            if header.tensor(tensor).is_none() {
                return Err(ShardError::TensorMissing {
                    tensor: tensor.clone(),
                    shard: shard.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Header {
        Header {
            header_len: 0,
            file_len: 8,
            metadata: BTreeMap::new(),
            tensors: names
                .iter()
                .map(|n| super::super::safetensors::TensorInfo {
                    name: n.to_string(),
                    dtype: super::super::safetensors::Dtype::F32,
                    shape: vec![0],
                    start: 8,
                    len: 0,
                    strides: None,
                })
                .collect(),
        }
    }

    const INDEX: &str = r#"{"metadata": {"total_size": 123},
        "weight_map": {"a": "m-1.safetensors", "b": "m-2.safetensors", "c": "m-1.safetensors"}}"#;

    #[test]
    fn parses_and_lists_shards() {
        let idx = parse_index(INDEX.as_bytes()).unwrap();
        assert_eq!(idx.metadata["total_size"], 123);
        assert_eq!(
            idx.shard_files(),
            vec!["m-1.safetensors", "m-2.safetensors"]
        );
        assert_eq!(
            idx.missing_shards(&["dir/m-1.safetensors"]),
            vec!["m-2.safetensors"]
        );
        assert!(idx
            .missing_shards(&["m-1.safetensors", "m-2.safetensors"])
            .is_empty());
    }

    #[test]
    fn checks_headers() {
        let idx = parse_index(INDEX.as_bytes()).unwrap();
        let (h1, h2) = (header(&["a", "c"]), header(&["b"]));
        idx.check_against_headers(&[("m-1.safetensors", &h1), ("m-2.safetensors", &h2)])
            .unwrap();
        // Only one shard given: the other's tensors are skipped.
        idx.check_against_headers(&[("m-1.safetensors", &h1)])
            .unwrap();

        let h1_missing = header(&["a"]);
        let e = idx
            .check_against_headers(&[("m-1.safetensors", &h1_missing)])
            .unwrap_err();
        assert_eq!(
            e,
            ShardError::TensorMissing {
                tensor: "c".into(),
                shard: "m-1.safetensors".into()
            }
        );

        let h2_dup = header(&["b", "a"]);
        let e = idx
            .check_against_headers(&[("m-1.safetensors", &h1), ("m-2.safetensors", &h2_dup)])
            .unwrap_err();
        assert!(
            e.to_string().contains("\"a\" is stored in two shards"),
            "{e}"
        );
    }

    #[test]
    fn rejects_bad_indexes() {
        assert!(matches!(parse_index(b"{"), Err(ShardError::NotJson { .. })));
        assert_eq!(parse_index(b"[]"), Err(ShardError::NotObject));
        assert_eq!(
            parse_index(br#"{"weight_map": []}"#),
            Err(ShardError::WeightMapNotObject)
        );
        assert_eq!(
            parse_index(br#"{"metadata": 1, "weight_map": {}}"#),
            Err(ShardError::MetadataNotObject)
        );
        assert_eq!(
            parse_index(br#"{"weight_map": {"x": 3}}"#),
            Err(ShardError::ShardNameNotString { tensor: "x".into() })
        );
        // Empty weight map is legal (nothing to load).
        assert!(parse_index(br#"{"weight_map": {}}"#)
            .unwrap()
            .shard_files()
            .is_empty());
    }
}
