//! Token batches from the three formats agree with each other, and each way a
//! token file can be wrong gives its error.

use std::path::Path;

use rankscope_core::formats::tokens::{
    parse_npy, parse_tokens_json, parse_tokens_safetensors, TokenBatch, TokenError,
};
use rankscope_core::source::FileSource;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures");

fn st(tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn npy_v1(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(data);
    out
}

#[test]
fn eval_batch_is_the_same_in_every_format() {
    let eval = parse_tokens_safetensors(
        &FileSource::open(Path::new(FIXTURES).join("eval_tokens.safetensors")).unwrap(),
    )
    .unwrap();
    assert_eq!((eval.batch, eval.seq_len), (4, 128));

    let i64s: Vec<u8> = eval
        .ids
        .iter()
        .flat_map(|&id| i64::from(id).to_le_bytes())
        .collect();
    assert_eq!(parse_npy(&npy_v1("<i8", "(4, 128)", &i64s)).unwrap(), eval);
    let u16s: Vec<u8> = eval
        .ids
        .iter()
        .flat_map(|&id| (id as u16).to_le_bytes())
        .collect();
    assert_eq!(parse_npy(&npy_v1("<u2", "(4, 128)", &u16s)).unwrap(), eval);

    let rows: Vec<&[u32]> = (0..eval.batch).map(|b| eval.row(b)).collect();
    assert_eq!(
        parse_tokens_json(serde_json::to_string(&rows).unwrap().as_bytes()).unwrap(),
        eval
    );
    let obj = serde_json::json!({ "input_ids": rows });
    assert_eq!(parse_tokens_json(obj.to_string().as_bytes()).unwrap(), eval);

    // The text is MPL-2.0 licence prose: mostly printable ASCII.
    let printable = eval
        .ids
        .iter()
        .filter(|&&id| (32..127).contains(&id) || id == 10)
        .count();
    assert!(printable > 500, "{printable}");
}

#[test]
fn safetensors_token_tensor_choice() {
    let ids: Vec<u8> = [1i32, 2, 3, 4, 5, 6]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let weights = vec![0u8; 8];
    // Only one integer tensor, rank 1 → one row.
    let f = st(&[
        ("tok", Dtype::I32, vec![6], ids.clone()),
        ("w", Dtype::F32, vec![2], weights.clone()),
    ]);
    assert_eq!(
        parse_tokens_safetensors(&f).unwrap(),
        TokenBatch {
            batch: 1,
            seq_len: 6,
            ids: vec![1, 2, 3, 4, 5, 6]
        }
    );
    // input_ids wins over other integer tensors.
    let f = st(&[
        ("input_ids", Dtype::I32, vec![2, 3], ids.clone()),
        ("mask", Dtype::I32, vec![6], ids.clone()),
    ]);
    assert_eq!(parse_tokens_safetensors(&f).unwrap().row(1), &[4, 5, 6]);
    // Two integer tensors, none called input_ids.
    let f = st(&[
        ("a", Dtype::I32, vec![6], ids.clone()),
        ("b", Dtype::I32, vec![6], ids.clone()),
    ]);
    assert!(matches!(
        parse_tokens_safetensors(&f),
        Err(TokenError::NoTokenTensor { .. })
    ));
    // Rank 3.
    let f = st(&[("input_ids", Dtype::I32, vec![1, 2, 3], ids.clone())]);
    assert_eq!(
        parse_tokens_safetensors(&f),
        Err(TokenError::BadRank {
            shape: vec![1, 2, 3]
        })
    );
    // Negative id, named by row and column.
    let neg: Vec<u8> = [0i64, 1, 2, -7]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f = st(&[("input_ids", Dtype::I64, vec![2, 2], neg)]);
    let e = parse_tokens_safetensors(&f).unwrap_err();
    assert_eq!(e.to_string(), "negative token id -7 at row 1, column 1");
    // A broken file surfaces the safetensors error.
    assert!(matches!(
        parse_tokens_safetensors(&f[..f.len() - 1]),
        Err(TokenError::Safetensors(_))
    ));
}

#[test]
fn vocab_check_on_the_held_out_set() {
    let held = parse_tokens_safetensors(
        &FileSource::open(Path::new(FIXTURES).join("heldout_tokens.safetensors")).unwrap(),
    )
    .unwrap();
    held.check_vocab(256).unwrap();
    let max = held.max_id().unwrap();
    let e = held.check_vocab(max as usize).unwrap_err();
    let first = held.ids.iter().position(|&id| id == max).unwrap();
    assert_eq!(
        e,
        TokenError::IdOutOfVocab {
            id: max,
            row: first / 128,
            col: first % 128,
            vocab: max as usize
        }
    );
}
