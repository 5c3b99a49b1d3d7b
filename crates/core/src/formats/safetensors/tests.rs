//! Unit tests for the header parser and decoders: one per error variant the
//! malformed corpus (`tests/malformed/`) does not cover, the >4 GB case, and
//! the bit-level value scan.

use super::*;
use std::cell::RefCell;
use std::io;

/// A file: prefix + JSON header + `data_len` zero bytes.
fn file(json: &str, data_len: usize) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json.as_bytes());
    out.extend(std::iter::repeat_n(0u8, data_len));
    out
}

fn err(json: &str, data_len: usize) -> SafetensorsError {
    read_header(&file(json, data_len)).unwrap_err()
}

#[test]
fn parses_a_valid_header() {
    let json = r#"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[16,20]},
        "__metadata__":{"format":"pt"},
        "a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},
        "z":{"dtype":"I64","shape":[0],"data_offsets":[20,20]}}   "#;
    let bytes = file(json, 20);
    let h = read_header(&bytes).unwrap();
    assert_eq!(h.header_len, json.len() as u64);
    assert_eq!(h.file_len, bytes.len() as u64);
    assert_eq!(h.metadata.get("format").map(String::as_str), Some("pt"));
    let names: Vec<_> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "z"]); // file order, not JSON order
    let a = h.tensor("a").unwrap();
    assert_eq!((a.start, a.len, a.numel()), (h.data_start(), 16, 4));
    assert_eq!(a.byte_range(), h.data_start()..h.data_start() + 16);
    assert_eq!(h.tensor("b").unwrap().start, h.data_start() + 16);
    assert_eq!(h.dtypes(), vec![Dtype::F32, Dtype::BF16, Dtype::I64]);
    assert!(h.tensor("nope").is_none());
    assert_eq!(
        serde_json::to_value(h.dtypes()).unwrap(),
        serde_json::json!(["F32", "BF16", "I64"])
    );
}

#[test]
fn empty_tensor_list_is_legal() {
    let h = read_header(&file("{}", 0)).unwrap();
    assert!(h.tensors.is_empty() && h.metadata.is_empty());
    let h = read_header(&file(r#"{"__metadata__":{}}        "#, 0)).unwrap();
    assert_eq!(h.data_start(), h.file_len);
}

#[test]
fn dtype_names_round_trip() {
    for d in Dtype::ALL {
        assert_eq!(Dtype::from_name(&d.to_string()), Some(d));
        assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{d}\""));
        assert_eq!(
            serde_json::from_str::<Dtype>(&format!("\"{d}\"")).unwrap(),
            d
        );
        assert!(!(d.is_float() && d.is_integer()));
    }
    assert_eq!(Dtype::BF16.to_string(), "BF16");
    assert_eq!(
        (
            Dtype::F64.size_bytes(),
            Dtype::BF16.size_bytes(),
            Dtype::BOOL.size_bytes()
        ),
        (8, 2, 1)
    );
    assert!(Dtype::from_name("bf16").is_none());
}

#[test]
fn length_prefix_checks() {
    assert_eq!(
        read_header_len(&[1, 0, 0], 3),
        Err(SafetensorsError::TooShort { len: 3 })
    );
    assert_eq!(read_header_len(&2u64.to_le_bytes(), 10), Ok(2));
    assert_eq!(
        read_header_len(&3u64.to_le_bytes(), 10),
        Err(SafetensorsError::HeaderPastEnd {
            header_len: 3,
            available: 2
        })
    );
    assert_eq!(
        read_header_len(&u64::MAX.to_le_bytes(), 10),
        Err(SafetensorsError::HeaderTooLarge {
            header_len: u64::MAX,
            max: MAX_HEADER_LEN
        })
    );
    assert_eq!(
        read_header_len(&0u64.to_le_bytes(), 4),
        Err(SafetensorsError::TooShort { len: 4 })
    );
}

#[test]
fn metadata_must_be_an_object() {
    let e = err(r#"{"__metadata__":["a"]}"#, 0);
    assert_eq!(
        e,
        SafetensorsError::MetadataNotObject {
            found: "an array".into()
        }
    );
}

#[test]
fn tensor_entry_must_be_an_object() {
    let e = err(r#"{"w":[1,2]}"#, 0);
    assert_eq!(
        e,
        SafetensorsError::TensorNotObject {
            tensor: "w".into(),
            found: "an array".into()
        }
    );
}

#[test]
fn fields_must_have_the_right_type() {
    let cases = [
        (
            r#"{"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}"#,
            "dtype",
        ),
        (
            r#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            "shape",
        ),
        (
            r#"{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#,
            "shape",
        ),
        (
            r#"{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#,
            "shape",
        ),
        (
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#,
            "data_offsets",
        ),
        (
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#,
            "data_offsets",
        ),
        (
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}}"#,
            "data_offsets",
        ),
        (
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":{"a":0}}}"#,
            "data_offsets",
        ),
    ];
    for (json, field) in cases {
        match err(json, 4) {
            SafetensorsError::BadField {
                tensor, field: f, ..
            } => assert_eq!((tensor.as_str(), f.as_str()), ("w", field), "{json}"),
            other => panic!("{json}: {other}"),
        }
    }
    let e = err(
        r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}}"#,
        4,
    );
    assert!(
        e.to_string()
            .contains("\"data_offsets\" must be two non-negative integers"),
        "{e}"
    );
    assert_eq!(
        err(r#"{"w":{"dtype":"F32","data_offsets":[0,4]}}"#, 4),
        SafetensorsError::MissingField {
            tensor: "w".into(),
            field: "shape".into()
        }
    );
    assert_eq!(
        err(r#"{"w":{"dtype":"F32","shape":[1]}}"#, 4),
        SafetensorsError::MissingField {
            tensor: "w".into(),
            field: "data_offsets".into()
        }
    );
}

#[test]
fn sub_byte_dtypes_must_fill_whole_bytes() {
    let e = err(
        r#"{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
        2,
    );
    assert_eq!(
        e,
        SafetensorsError::MisalignedBits {
            tensor: "w".into(),
            numel: 3,
            dtype: Dtype::F4
        }
    );
    // 4 F4 values = 2 bytes is fine; decoding it is refused, not the header.
    let bytes = file(
        r#"{"w":{"dtype":"F4","shape":[4],"data_offsets":[0,2]}}"#,
        2,
    );
    let h = read_header(&bytes).unwrap();
    let t = h.tensor("w").unwrap();
    let e = read_tensor_f32(&bytes, t).unwrap_err();
    assert!(e.to_string().starts_with("unsupported dtype F4"), "{e}");
}

#[test]
fn unsupported_dtypes_are_refused_only_when_decoding() {
    let bytes = file(
        r#"{"w":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}}"#,
        4,
    );
    let h = read_header(&bytes).unwrap();
    let t = h.tensor("w").unwrap();
    assert_eq!(read_tensor_bytes(&bytes, t).unwrap().len(), 4);
    for e in [
        decode_f32(&[0; 4], Dtype::F8_E4M3).unwrap_err(),
        decode_f64(&[0; 4], Dtype::C64).unwrap_err(),
        read_tensor_f64(&bytes, t).unwrap_err(),
    ] {
        assert!(
            matches!(e, SafetensorsError::UnsupportedDtype { .. }),
            "{e}"
        );
        assert!(e.to_string().contains("unsupported dtype"), "{e}");
    }
    let e = decode_i64(&[0; 4], Dtype::F32).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unsupported dtype F32: cannot decode it as integers (it is not an integer type)"
    );
}

#[test]
fn decoders_refuse_partial_elements() {
    assert_eq!(
        decode_f32(&[0; 6], Dtype::F32).unwrap_err(),
        SafetensorsError::RaggedBytes {
            dtype: Dtype::F32,
            len: 6,
            size: 4
        }
    );
    assert!(decode_f64(&[0; 3], Dtype::BF16).is_err());
    assert!(decode_i64(&[0; 7], Dtype::I64).is_err());
}

#[test]
fn u64_over_i64_max_is_refused() {
    let e = decode_i64(&u64::MAX.to_le_bytes(), Dtype::U64).unwrap_err();
    assert_eq!(e, SafetensorsError::IntegerOutOfRange { value: u64::MAX });
    assert_eq!(
        decode_i64(&5u64.to_le_bytes(), Dtype::U64).unwrap(),
        vec![5]
    );
}

#[test]
fn decodes_every_supported_dtype() {
    assert_eq!(
        decode_f32(&[0, 1, 7], Dtype::BOOL).unwrap(),
        vec![0.0, 1.0, 1.0]
    );
    assert_eq!(decode_f32(&[255], Dtype::I8).unwrap(), vec![-1.0]);
    assert_eq!(decode_f64(&[255], Dtype::U8).unwrap(), vec![255.0]);
    assert_eq!(
        decode_f32(&(-3i16).to_le_bytes(), Dtype::I16).unwrap(),
        vec![-3.0]
    );
    assert_eq!(
        decode_i64(&40000u16.to_le_bytes(), Dtype::U16).unwrap(),
        vec![40000]
    );
    assert_eq!(
        decode_f64(&u32::MAX.to_le_bytes(), Dtype::U32).unwrap(),
        vec![4294967295.0]
    );
    assert_eq!(
        decode_f64(&0.1f64.to_le_bytes(), Dtype::F64).unwrap(),
        vec![0.1]
    );
    assert_eq!(
        decode_f32(&0.1f64.to_le_bytes(), Dtype::F64).unwrap(),
        vec![0.1f32]
    );
    // F16/BF16 across the stack-buffer block boundary (1024 elements).
    let xs: Vec<f32> = (0..2500).map(|i| i as f32 * 0.25 - 300.0).collect();
    let f16b: Vec<u8> = xs
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let bf16b: Vec<u8> = xs
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let back16 = decode_f32(&f16b, Dtype::F16).unwrap();
    let backbf = decode_f64(&bf16b, Dtype::BF16).unwrap();
    for (i, &x) in xs.iter().enumerate() {
        assert_eq!(back16[i], half::f16::from_f32(x).to_f32());
        assert_eq!(backbf[i], f64::from(half::bf16::from_f32(x).to_f32()));
    }
}

#[test]
fn read_tensor_f32_reads_in_chunks_that_match_one_read() {
    // 3 MiB + 3 elements of F32: more than one chunk when the chunk is small
    // enough; here we just check the chunked path against the one-read path.
    let n = (decode::DECODE_CHUNK_BYTES / 4) * 2 + 3;
    let json = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#,
        n * 4
    );
    let mut bytes = file(&json, 0);
    bytes.extend((0..n).flat_map(|i| (i as f32).to_le_bytes()));
    let h = read_header(&bytes).unwrap();
    let t = h.tensor("w").unwrap();
    let v = read_tensor_f32(&bytes, t).unwrap();
    assert_eq!(v.len(), n);
    assert_eq!(
        v,
        decode_f32(&read_tensor_bytes(&bytes, t).unwrap(), Dtype::F32).unwrap()
    );
    assert_eq!(read_tensor_f64(&bytes, t).unwrap()[n - 1], (n - 1) as f64);
}

#[test]
fn scan_counts_non_finite_bits() {
    let f32s = [
        1.0f32,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        60000.0,
        -f32::NAN,
    ];
    let b: Vec<u8> = f32s.iter().flat_map(|x| x.to_le_bytes()).collect();
    let s = scan_values(&b, Dtype::F32);
    assert_eq!(
        s,
        ValueScan {
            nan: 2,
            pos_inf: 1,
            neg_inf: 1
        }
    );
    assert_eq!(s.non_finite(), 4);
    // All finite (the fast path: nothing is classified).
    let finite: Vec<u8> = [1.0f32, -0.0, 60000.0, f32::MAX, f32::MIN_POSITIVE]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(scan_values(&finite, Dtype::F32), ValueScan::default());
    let f64s = [f64::NAN, f64::NEG_INFINITY, 2.0, f64::MIN_POSITIVE];
    let b: Vec<u8> = f64s.iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(
        scan_values(&b, Dtype::F64),
        ValueScan {
            nan: 1,
            pos_inf: 0,
            neg_inf: 1
        }
    );
    for (dtype, conv) in [
        (
            Dtype::F16,
            (|x: f32| half::f16::from_f32(x).to_le_bytes()) as fn(f32) -> [u8; 2],
        ),
        (Dtype::BF16, |x: f32| half::bf16::from_f32(x).to_le_bytes()),
    ] {
        let b: Vec<u8> = f32s.iter().flat_map(|&x| conv(x)).collect();
        assert_eq!(
            scan_values(&b, dtype),
            ValueScan {
                nan: 2,
                pos_inf: 1,
                neg_inf: 1
            },
            "{dtype}"
        );
        assert_eq!(
            decode_f32(&b, dtype)
                .unwrap()
                .iter()
                .filter(|x| x.is_nan())
                .count(),
            2
        );
    }
    assert_eq!(
        scan_values(&[0x7C, 0xFC, 0x7D, 0x00], Dtype::F8_E5M2),
        ValueScan {
            nan: 1,
            pos_inf: 1,
            neg_inf: 1
        }
    );
    assert_eq!(scan_values(&[0x7F, 0xFF, 0x7E], Dtype::F8_E4M3).nan, 2);
    assert_eq!(scan_values(&[0xFF; 16], Dtype::I64), ValueScan::default());
}

#[test]
fn scan_finds_one_non_finite_value_anywhere_in_a_long_tensor() {
    // The fast path reads 1 KiB blocks: a single NaN or infinity in the first, a middle or the
    // last block, on either side of a block boundary, is found at every width.
    let n = 3000;
    for at in [0, 255, 256, 511, 512, 1023, 1024, 2000, n - 1] {
        for (what, bad) in [("NaN", f64::NAN), ("-inf", f64::NEG_INFINITY)] {
            let value = |i: usize| {
                if i == at {
                    bad
                } else {
                    (i as f64 * 0.37).sin()
                }
            };
            let cases: [(Dtype, Vec<u8>); 4] = [
                (
                    Dtype::F64,
                    (0..n).flat_map(|i| value(i).to_le_bytes()).collect(),
                ),
                (
                    Dtype::F32,
                    (0..n)
                        .flat_map(|i| (value(i) as f32).to_le_bytes())
                        .collect(),
                ),
                (
                    Dtype::F16,
                    (0..n)
                        .flat_map(|i| half::f16::from_f64(value(i)).to_le_bytes())
                        .collect(),
                ),
                (
                    Dtype::BF16,
                    (0..n)
                        .flat_map(|i| half::bf16::from_f64(value(i)).to_le_bytes())
                        .collect(),
                ),
            ];
            for (dtype, bytes) in cases {
                assert_eq!(
                    scan_values(&bytes, dtype).non_finite(),
                    1,
                    "{what} at {at}, {dtype}"
                );
            }
        }
    }
}

/// A 5 GiB source that holds a header at the front and synthetic tensor data
/// elsewhere, recording every read.
struct Huge {
    head: Vec<u8>,
    len: u64,
    reads: RefCell<Vec<(u64, usize)>>,
}

impl ByteSource for Huge {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.reads.borrow_mut().push((offset, len));
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "past the end"));
        }
        // Byte i of the file is its offset's low byte, past the header.
        Ok((0..len as u64)
            .map(|i| {
                let at = offset + i;
                self.head
                    .get(at as usize)
                    .copied()
                    .unwrap_or((at % 251) as u8)
            })
            .collect())
    }
}

#[test]
fn files_over_4_gib_use_u64_offsets() {
    const GIB: u64 = 1 << 30;
    let big = 5 * GIB - 4096; // one F32 tensor of almost 5 GiB, then a small one
    let json = format!(
        r#"{{"big":{{"dtype":"U8","shape":[{big}],"data_offsets":[0,{big}]}},
            "late":{{"dtype":"F32","shape":[4],"data_offsets":[{big},{}]}}}}"#,
        big + 16
    );
    let mut head = (json.len() as u64).to_le_bytes().to_vec();
    head.extend(json.as_bytes());
    let src = Huge {
        len: head.len() as u64 + big + 16,
        head,
        reads: RefCell::new(Vec::new()),
    };

    let h = read_header(&src).unwrap();
    assert_eq!(
        *src.reads.borrow(),
        vec![(0, 8), (8, json.len())],
        "exactly two reads"
    );
    let late = h.tensor("late").unwrap();
    let expected_start = 8 + json.len() as u64 + big;
    assert!(expected_start > 4 * GIB);
    assert_eq!(late.byte_range(), expected_start..expected_start + 16);
    assert_eq!(h.tensor("big").unwrap().numel(), big);

    src.reads.borrow_mut().clear();
    let bytes = read_tensor_bytes(&src, late).unwrap();
    assert_eq!(*src.reads.borrow(), vec![(expected_start, 16)]);
    assert_eq!(bytes.first().copied(), Some((expected_start % 251) as u8));

    // On a 64-bit host the big tensor fits in usize; on wasm32 it would be
    // TooLargeForMemory rather than a wrong read.
    if usize::BITS == 32 {
        assert!(matches!(
            read_tensor_bytes(&src, h.tensor("big").unwrap()),
            Err(SafetensorsError::TooLargeForMemory { .. })
        ));
    }
}

#[test]
fn io_errors_are_reported_with_the_range() {
    // A header that claims more data than a lying source can deliver.
    struct Liar;
    impl ByteSource for Liar {
        fn len(&self) -> u64 {
            100
        }
        fn read_at(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            if offset == 0 {
                Ok(2u64.to_le_bytes().to_vec())
            } else {
                Err(io::Error::other(format!("disk on fire ({len})")))
            }
        }
    }
    let e = read_header(&Liar).unwrap_err();
    assert_eq!(
        e,
        SafetensorsError::Io {
            offset: 8,
            len: 2,
            message: "disk on fire (2)".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "could not read 2 bytes at offset 8: disk on fire (2)"
    );
}

#[test]
fn too_large_for_memory_is_reported() {
    let t = TensorInfo {
        name: "w".into(),
        dtype: Dtype::U8,
        shape: vec![u64::MAX],
        start: 0,
        len: u64::MAX,
        strides: None,
    };
    let e = read_tensor_f32(&Vec::<u8>::new(), &t).unwrap_err();
    if usize::BITS == 64 {
        // Fits in usize but the allocation is refused, or the read fails.
        assert!(
            matches!(
                e,
                SafetensorsError::TooLargeForMemory { .. } | SafetensorsError::Io { .. }
            ),
            "{e}"
        );
    } else {
        assert!(
            matches!(e, SafetensorsError::TooLargeForMemory { .. }),
            "{e}"
        );
    }
    let e = SafetensorsError::TooLargeForMemory {
        what: "tensor \"w\"".into(),
        len: 5 << 30,
    };
    assert_eq!(
        e.to_string(),
        "tensor \"w\" is 5368709120 bytes, more than this platform can hold in memory"
    );
}

#[test]
fn messages_read_plainly() {
    let e = err(
        r#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}"#,
        20,
    );
    assert_eq!(
        e.to_string(),
        "tensor \"w\": F32 [2, 3] needs 24 bytes but its data_offsets span 20"
    );
    let e = read_header_len(&9000u64.to_le_bytes(), 808).unwrap_err();
    assert_eq!(
        e.to_string(),
        "header says 9000 bytes but the file has only 800 after the length prefix"
    );
}

#[test]
fn no_prefix_of_a_valid_file_panics() {
    let json = r#"{"__metadata__":{"k":"v"},"a":{"dtype":"F16","shape":[3],"data_offsets":[0,6]}}"#;
    let bytes = file(json, 6);
    assert!(read_header(&bytes).is_ok());
    for n in 0..bytes.len() {
        assert!(
            read_header(&bytes[..n]).is_err(),
            "prefix of {n} bytes parsed"
        );
    }
    // Flipping any single byte never panics.
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0xA5;
        let _ = read_header(&b);
    }
}

/// Property: for random tensors written by the reference `safetensors`
/// crate, our header agrees with the crate's on every tensor, and our
/// decoders give back exactly the values written, for every common dtype.
#[test]
fn round_trip_with_the_safetensors_crate() {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype as St;
    use std::collections::HashMap;

    let mut rng = fastrand::Rng::with_seed(0x5afe);
    for case in 0..200 {
        let n_tensors = rng.usize(0..6);
        // (name, our dtype, their dtype, shape, bytes, expected f64 values, expected i64 values)
        let mut tensors = Vec::new();
        for k in 0..n_tensors {
            let rank = rng.usize(0..4);
            let shape: Vec<usize> = (0..rank).map(|_| rng.usize(0..7)).collect();
            let numel: usize = shape.iter().product();
            let pick = rng.usize(0..7);
            let (ours, theirs) = [
                (Dtype::F64, St::F64),
                (Dtype::F32, St::F32),
                (Dtype::F16, St::F16),
                (Dtype::BF16, St::BF16),
                (Dtype::I64, St::I64),
                (Dtype::I32, St::I32),
                (Dtype::U8, St::U8),
            ][pick];
            let mut bytes = Vec::new();
            let mut want = Vec::new();
            let mut want_i = Vec::new();
            for _ in 0..numel {
                let x = (rng.f64() - 0.5) * 10f64.powi(rng.i32(-8..8));
                match ours {
                    Dtype::F64 => {
                        bytes.extend(x.to_le_bytes());
                        want.push(x);
                    }
                    Dtype::F32 => {
                        bytes.extend((x as f32).to_le_bytes());
                        want.push(f64::from(x as f32));
                    }
                    Dtype::F16 => {
                        let h = half::f16::from_f64(x);
                        bytes.extend(h.to_le_bytes());
                        want.push(h.to_f64());
                    }
                    Dtype::BF16 => {
                        let h = half::bf16::from_f64(x);
                        bytes.extend(h.to_le_bytes());
                        want.push(h.to_f64());
                    }
                    Dtype::I64 => {
                        let v = rng.i64(..) >> rng.u32(0..63);
                        bytes.extend(v.to_le_bytes());
                        want.push(v as f64);
                        want_i.push(v);
                    }
                    Dtype::I32 => {
                        let v = rng.i32(..);
                        bytes.extend(v.to_le_bytes());
                        want.push(f64::from(v));
                        want_i.push(i64::from(v));
                    }
                    _ => {
                        let v = rng.u8(..);
                        bytes.push(v);
                        want.push(f64::from(v));
                        want_i.push(i64::from(v));
                    }
                }
            }
            tensors.push((
                format!("t{k}.w{}", rng.u32(..)),
                ours,
                theirs,
                shape,
                bytes,
                want,
                want_i,
            ));
        }
        let meta: HashMap<String, String> = (0..rng.usize(0..3))
            .map(|i| (format!("k{i}"), format!("v{}", rng.u64(..))))
            .collect();
        let views: Vec<(String, TensorView)> = tensors
            .iter()
            .map(|(name, _, theirs, shape, bytes, _, _)| {
                (
                    name.clone(),
                    TensorView::new(*theirs, shape.clone(), bytes).unwrap(),
                )
            })
            .collect();
        let file = safetensors::serialize(
            views,
            if meta.is_empty() {
                None
            } else {
                Some(meta.clone())
            },
        )
        .unwrap();

        let h = read_header(&file).unwrap_or_else(|e| panic!("case {case}: {e}"));
        let reference = safetensors::SafeTensors::deserialize(&file).unwrap();
        assert_eq!(h.tensors.len(), n_tensors, "case {case}");
        assert_eq!(
            h.metadata,
            meta.into_iter().collect::<BTreeMap<_, _>>(),
            "case {case}"
        );
        for (name, dtype, _, shape, bytes, want, want_i) in &tensors {
            let t = h.tensor(name).unwrap();
            assert_eq!(t.dtype, *dtype);
            assert_eq!(t.shape, shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
            let theirs = reference.tensor(name).unwrap();
            assert_eq!(
                read_tensor_bytes(&file, t).unwrap(),
                theirs.data(),
                "case {case} {name}"
            );
            assert_eq!(&read_tensor_bytes(&file, t).unwrap(), bytes);
            let got = read_tensor_f64(&file, t).unwrap();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                assert!(
                    g == w || (g.is_nan() && w.is_nan()),
                    "case {case} {name} {dtype}: {g} != {w}"
                );
            }
            let got32 = read_tensor_f32(&file, t).unwrap();
            for (g, w) in got32.iter().zip(want) {
                assert_eq!(*g, *w as f32, "case {case} {name} {dtype}");
            }
            if dtype.is_integer() {
                assert_eq!(&decode_i64(bytes, *dtype).unwrap(), want_i);
            } else {
                assert!(decode_i64(bytes, *dtype).is_err());
            }
        }
    }
}

#[test]
fn repeated_keys_inside_an_entry_are_refused() {
    let e = err(
        r#"{"w":{"dtype":"F32","shape":[1],"dtype":"F16","data_offsets":[0,4]}}"#,
        4,
    );
    assert_eq!(
        e,
        SafetensorsError::DuplicateKey {
            entry: "w".into(),
            key: "dtype".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "key \"dtype\" appears more than once in the entry of \"w\""
    );
    let e = err(r#"{"__metadata__":{"run":"A1","run":"B1"}}"#, 0);
    assert_eq!(
        e,
        SafetensorsError::DuplicateKey {
            entry: "__metadata__".into(),
            key: "run".into()
        }
    );
    // The same key in different entries is fine.
    assert!(read_header(&file(
        r#"{"__metadata__":{"dtype":"x"},"a":{"dtype":"U8","shape":[],"data_offsets":[0,1]}}"#,
        1
    ))
    .is_ok());
}

#[test]
fn null_metadata_is_no_metadata() {
    // The safetensors crate reads "__metadata__": null as absent; so do we.
    let h = read_header(&file(r#"{"__metadata__":null}"#, 0)).unwrap();
    assert!(h.metadata.is_empty());
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep = format!("{{\"w\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        err(&deep, 0),
        SafetensorsError::HeaderNotJson { .. }
    ));
}
