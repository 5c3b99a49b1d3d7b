//! `tests/pytorch/views.pt`, written by `make_files.py` in the format of
//! torch.save (CPython's pickle and zipfile): transposed views, views at
//! storage offsets into a shared storage, F64/BF16/F16 and a parameter, each
//! read back to the row-major values Python computed.

use super::*;
use crate::formats::safetensors::read_tensor_f64;
use crate::source::block_on;

const VIEWS: &[u8] = include_bytes!("../../../../../tests/pytorch/views.pt");
const EXPECTED: &str = include_str!("../../../../../tests/pytorch/views_expected.json");

#[test]
fn views_read_as_python_computed_them() {
    let ckpt = block_on(read_checkpoint(&VIEWS)).expect("views.pt reads");
    assert_eq!(ckpt.format, PtFormat::Zip);
    assert_eq!(ckpt.state_dict_at, "model_state_dict");
    assert_eq!(
        ckpt.header.metadata.get("step").map(String::as_str),
        Some("12")
    );
    assert_eq!(
        ckpt.header.metadata.get("config").map(String::as_str),
        Some(r#"{"d_model":4}"#)
    );
    assert_eq!(ckpt.config_class.as_deref(), Some("dict"));
    let expected: serde_json::Value = serde_json::from_str(EXPECTED).unwrap();
    let expected = expected.as_object().unwrap();
    assert_eq!(ckpt.header.tensors.len(), expected.len());
    for (name, want) in expected {
        let t = ckpt
            .header
            .tensor(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        let shape: Vec<u64> = want["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(t.shape, shape, "{name}");
        let values: Vec<f64> = want["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = read_tensor_f64(VIEWS, t).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, values, "{name}");
    }
    // Contiguous tensors are plain ranges; views keep their strides.
    for (name, strided) in [
        ("dense", false),
        ("at_offset", false),
        ("f16_param", false),
        ("transposed", true),
        ("bf16_t", true),
        ("every_other", true),
    ] {
        assert_eq!(
            ckpt.header.tensor(name).unwrap().strides.is_some(),
            strided,
            "{name}"
        );
    }
    // Two views of one storage: the offset view starts 2 elements in.
    let (a, b) = (
        ckpt.header.tensor("at_offset").unwrap(),
        ckpt.header.tensor("same_storage").unwrap(),
    );
    assert_eq!(a.start, b.start + 8);
}

#[test]
fn strides_of_size_one_dimensions_do_not_matter() {
    assert_eq!(row_major(&[4, 3, 2]), vec![6, 2, 1]);
    assert_eq!(row_major(&[]), Vec::<u64>::new());
}

#[test]
fn every_prefix_of_a_checkpoint_is_an_error_not_a_panic() {
    for n in 0..VIEWS.len() {
        let cut = &VIEWS[..n];
        assert!(
            block_on(read_checkpoint(&cut)).is_err(),
            "prefix of {n} bytes"
        );
    }
}
