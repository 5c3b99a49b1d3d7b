//! Pickles written by CPython's `pickle` (protocols 0, 2, 4, 5; the hex was
//! made by `pickle.dumps` of the object in [`python_object`]'s doc), and
//! hostile ones.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `{'a': [1, -2, 3.5, None, True], 'b': (b'xy', 'sé'), 'big': 2**70, 'neg': -300,
///   'od': OrderedDict([('k', 1)]), 'cfg': LLMConfig(d_model=64, n_heads=4, use_qk_norm=True),
///   'set': {7}}` with `LLMConfig` a dataclass of module `configs.llm_config`.
const P0: &str = "286470300a56610a70310a286c70320a49310a61492d320a6146332e350a614e614930310a617356620a70330a28635f636f646563730a656e636f64650a70340a285678790a70350a566c6174696e310a70360a7470370a5270380a5673e90a70390a747031300a73566269670a7031310a4c313138303539313632303731373431313330333432344c0a73566e65670a7031320a492d3330300a73566f640a7031330a63636f6c6c656374696f6e730a4f726465726564446963740a7031340a2874527031350a566b0a7031360a49310a7373566366670a7031370a63636f70795f7265670a5f7265636f6e7374727563746f720a7031380a2863636f6e666967732e6c6c6d5f636f6e6669670a4c4c4d436f6e6669670a7031390a635f5f6275696c74696e5f5f0a6f626a6563740a7032300a4e747032310a527032320a28647032330a56645f6d6f64656c0a7032340a4936340a73566e5f68656164730a7032350a49340a73567573655f716b5f6e6f726d0a7032360a4930310a736273567365740a7032370a635f5f6275696c74696e5f5f0a7365740a7032380a28286c7032390a49370a61747033300a527033310a732e";
const P2: &str = "80027d71002858010000006171015d7102284b014afeffffff47400c0000000000004e88655801000000627103635f636f646563730a656e636f64650a710458020000007879710558060000006c6174696e317106867107527108580300000073c3a9710986710a5803000000626967710b8a0900000000000000004058030000006e6567710c4ad4feffff58020000006f64710d63636f6c6c656374696f6e730a4f726465726564446963740a710e2952710f58010000006b71104b01735803000000636667711163636f6e666967732e6c6c6d5f636f6e6669670a4c4c4d436f6e6669670a7112298171137d7114285807000000645f6d6f64656c71154b4058070000006e5f686561647371164b04580b0000007573655f716b5f6e6f726d711788756258030000007365747118635f5f6275696c74696e5f5f0a7365740a71195d711a4b076185711b52711c752e";
const P4: &str = "800495dd000000000000007d94288c0161945d94284b014afeffffff47400c0000000000004e88658c01629443027879948c0373c3a99486948c03626967948a090000000000000000408c036e6567944ad4feffff8c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b01738c03636667948c12636f6e666967732e6c6c6d5f636f6e666967948c094c4c4d436f6e6669679493942981947d94288c07645f6d6f64656c944b408c076e5f6865616473944b048c0b7573655f716b5f6e6f726d948875628c03736574948f94284b0790752e";
const P5: &str = "800595dd000000000000007d94288c0161945d94284b014afeffffff47400c0000000000004e88658c01629443027879948c0373c3a99486948c03626967948a090000000000000000408c036e6567944ad4feffff8c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b01738c03636667948c12636f6e666967732e6c6c6d5f636f6e666967948c094c4c4d436f6e6669679493942981947d94288c07645f6d6f64656c944b408c076e5f6865616473944b048c0b7573655f716b5f6e6f726d948875628c03736574948f94284b0790752e";

fn config_json() -> serde_json::Value {
    serde_json::json!({"d_model": 64, "n_heads": 4, "use_qk_norm": true})
}

#[test]
fn python_object_in_every_protocol() {
    for (p, text) in [(0, P0), (2, P2), (4, P4), (5, P5)] {
        let bytes = hex(text);
        let (v, used) = parse(&bytes).unwrap_or_else(|e| panic!("protocol {p}: {e}"));
        assert_eq!(used, bytes.len(), "protocol {p}");
        assert_eq!(
            v.get("a"),
            Some(&Value::List(vec![
                Value::Int(1),
                Value::Int(-2),
                Value::Float(3.5),
                Value::None,
                Value::Bool(true)
            ])),
            "protocol {p}"
        );
        assert_eq!(v.get("neg"), Some(&Value::Int(-300)), "protocol {p}");
        assert!(
            matches!(v.get("big"), Some(Value::BigInt(_))),
            "protocol {p}: {:?}",
            v.get("big")
        );
        assert_eq!(
            v.get("od"),
            Some(&Value::Dict(vec![(Value::Str("k".into()), Value::Int(1))])),
            "protocol {p}"
        );
        // The dataclass is its fields, whichever way the protocol records it.
        assert_eq!(
            v.get("cfg").map(Value::to_json),
            Some(config_json()),
            "protocol {p}"
        );
        let b = v.get("b").and_then(Value::elements).unwrap();
        assert_eq!(b[1], Value::Str("sé".into()), "protocol {p}");
        if p >= 4 {
            assert_eq!(b[0], Value::Bytes(b"xy".to_vec()));
            assert_eq!(v.get("set"), Some(&Value::Set(vec![Value::Int(7)])));
        }
    }
}

#[test]
fn memo_shares_and_later_mutation_is_seen() {
    // {'x': shared, 'y': shared} with shared = [1, 2]; the list is put in the
    // memo while empty and filled afterwards.
    let bytes = hex("80027d71002858010000007871015d7102284b014b026558010000007971036802752e");
    let (v, _) = parse(&bytes).unwrap();
    let list = Value::List(vec![Value::Int(1), Value::Int(2)]);
    assert_eq!(v.get("x"), Some(&list));
    assert_eq!(v.get("y"), Some(&list));
}

#[test]
fn code_globals_are_refused_by_name() {
    // class P: __reduce__ → (os.system, ('echo pwned',)), protocol 2 (posix.system on Linux).
    let system =
        hex("800263706f7369780a73797374656d0a7100580a0000006563686f2070776e656471018571025271032e");
    let err = parse(&system).unwrap_err();
    assert_eq!(
        err,
        PickleError::CodeGlobal {
            module: "posix".into(),
            name: "system".into()
        }
    );
    assert!(err.to_string().contains("posix.system") && err.to_string().contains("never runs"));
    // builtins.eval through STACK_GLOBAL, protocol 4.
    let eval =
        hex("8004951f000000000000008c086275696c74696e73948c046576616c9493948c03312b3194859452942e");
    assert_eq!(
        parse(&eval).unwrap_err(),
        PickleError::CodeGlobal {
            module: "builtins".into(),
            name: "eval".into()
        }
    );
}

#[test]
fn unknown_calls_are_recorded_not_made() {
    // mymod.f('x') then BUILD {'k': 1}.
    let mut b = b"\x80\x02cmymod\nf\nX\x01\x00\x00\x00x\x85R}X\x01\x00\x00\x00kK\x01sb.".to_vec();
    let (v, _) = parse(&b).unwrap();
    let Value::Object {
        module,
        name,
        args,
        state,
        ..
    } = &v
    else {
        panic!("{v:?}")
    };
    assert_eq!((module.as_str(), name.as_str()), ("mymod", "f"));
    assert_eq!(args, &vec![Value::Str("x".into())]);
    assert_eq!(
        state.as_deref().map(Value::to_json),
        Some(serde_json::json!({"k": 1}))
    );
    // A call whose callable is not a global is refused.
    b = b"\x80\x02K\x01)R.".to_vec();
    assert!(parse(&b).unwrap_err().to_string().contains("not a global"));
}

#[test]
fn persistent_ids_are_left_to_the_caller() {
    let b = b"\x80\x02(X\x07\x00\x00\x00storageK\x05tQ.";
    let (v, _) = parse(b).unwrap();
    assert_eq!(
        v,
        Value::PersistentId(Box::new(Value::Tuple(vec![
            Value::Str("storage".into()),
            Value::Int(5)
        ])))
    );
}

#[test]
fn deep_nesting_and_cycles_stop_at_the_depth_cap() {
    let mut deep = b"\x80\x02".to_vec();
    deep.extend(std::iter::repeat_n(b']', 1000));
    deep.extend(std::iter::repeat_n(b'a', 999));
    deep.push(b'.');
    assert_eq!(parse(&deep).unwrap_err(), PickleError::TooDeep);
    // l = []; l.append(l)
    let cycle = b"\x80\x02]q\x00h\x00a.";
    assert_eq!(parse(cycle).unwrap_err(), PickleError::TooDeep);
}

#[test]
fn shared_values_cannot_unfold_past_the_cap() {
    // l0 = [1]; l_{i+1} = [l_i, l_i], 40 times: 2^40 values once unfolded.
    let mut b = b"\x80\x02]q\x00K\x01a".to_vec();
    for i in 0u8..40 {
        b.extend([b'0', b']', b'(', b'h', i, b'h', i, b'e', b'q', i + 1]);
    }
    b.push(b'.');
    assert_eq!(parse(&b).unwrap_err(), PickleError::TooManyValues);
}

/// The fuzzer's 1 KB pickle (a tuple memoised, then DUPed into the slots of
/// nested dicts) that unfolded to 8 M values (1.4 GB, 18 s) before the
/// sharing budget [`MAX_SHARED`].
#[test]
fn dup_heavy_pickles_stop_at_the_sharing_budget() {
    let data = include_bytes!("../../../../tests/data/pickle_dup_blowup.pkl");
    assert_eq!(parse(data).unwrap_err(), PickleError::TooManyValues);
}
