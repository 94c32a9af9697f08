//! Property tests against the reference `safetensors` crate: round trips, agreement on
//! random headers, and no panic on arbitrary or mutated bytes.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;

use adapter_core::safetensors::{Dtype, Header, Limits, TensorFile, read_header};
use proptest::prelude::*;
use safetensors::tensor::TensorView;

/// Our dtype as the reference crate's (all 22 exist in safetensors 0.8).
fn reference_dtype(d: Dtype) -> safetensors::Dtype {
    use safetensors::Dtype as R;
    match d {
        Dtype::Bool => R::BOOL,
        Dtype::U8 => R::U8,
        Dtype::I8 => R::I8,
        Dtype::F8E5M2 => R::F8_E5M2,
        Dtype::F8E4M3 => R::F8_E4M3,
        Dtype::F8E8M0 => R::F8_E8M0,
        Dtype::F8E4M3Fnuz => R::F8_E4M3FNUZ,
        Dtype::F8E5M2Fnuz => R::F8_E5M2FNUZ,
        Dtype::I16 => R::I16,
        Dtype::U16 => R::U16,
        Dtype::F16 => R::F16,
        Dtype::BF16 => R::BF16,
        Dtype::I32 => R::I32,
        Dtype::U32 => R::U32,
        Dtype::F32 => R::F32,
        Dtype::C64 => R::C64,
        Dtype::F64 => R::F64,
        Dtype::I64 => R::I64,
        Dtype::U64 => R::U64,
        Dtype::F4 => R::F4,
        Dtype::F6E2M3 => R::F6_E2M3,
        Dtype::F6E3M2 => R::F6_E3M2,
    }
}

fn parse(bytes: &[u8]) -> Result<Header, adapter_core::safetensors::SafetensorsError> {
    read_header(bytes, &Limits::REFERENCE, Some(bytes.len() as u64))
}

#[derive(Debug, Clone)]
struct Spec {
    dtype: Dtype,
    shape: Vec<usize>,
    seed: u64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::sample::select(Dtype::ALL.to_vec()),
        prop::collection::vec(0usize..5, 0..4),
        any::<u64>(),
    )
        .prop_map(|(dtype, mut shape, seed)| {
            let elements: usize = shape.iter().product();
            if !(elements as u64 * dtype.bits()).is_multiple_of(8) {
                // F4/F6 with an odd count: 4 more elements per element make whole bytes.
                shape.push(4);
            }
            Spec { dtype, shape, seed }
        })
}

fn bytes_for(spec: &Spec) -> Vec<u8> {
    let elements: usize = spec.shape.iter().product();
    let len = elements * spec.dtype.bits() as usize / 8;
    let mut x = spec.seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn tensors() -> impl Strategy<Value = BTreeMap<String, Spec>> {
    prop::collection::btree_map(
        "\\PC{1,12}".prop_filter("reserved key", |n| n != "__metadata__"),
        spec(),
        0..8,
    )
}

fn metadata() -> impl Strategy<Value = Option<HashMap<String, String>>> {
    prop::option::of(prop::collection::hash_map("\\PC{0,8}", "\\PC{0,8}", 0..4))
}

fn serialize(
    specs: &BTreeMap<String, Spec>,
    meta: Option<HashMap<String, String>>,
) -> (Vec<u8>, BTreeMap<String, Vec<u8>>) {
    let data: BTreeMap<String, Vec<u8>> = specs
        .iter()
        .map(|(n, s)| (n.clone(), bytes_for(s)))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = specs
        .iter()
        .map(|(n, s)| {
            let view = TensorView::new(reference_dtype(s.dtype), s.shape.clone(), &data[n]);
            (n.clone(), view.expect("valid view"))
        })
        .collect();
    let bytes = safetensors::serialize(views, meta).expect("reference serialises");
    (bytes, data)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Files written by the reference crate parse back identically, every tensor's bytes too.
    #[test]
    fn reference_files_round_trip(specs in tensors(), meta in metadata()) {
        let (bytes, data) = serialize(&specs, meta.clone());
        // safetensors 0.8.0's writer emits `{},"__metadata__":{}}` for no tensors and an empty
        // metadata map (its map length hint is 0); its own reader refuses that, and so do we.
        let Ok((n, reference)) = safetensors::SafeTensors::read_metadata(&bytes) else {
            prop_assert!(specs.is_empty() && meta.as_ref().is_some_and(HashMap::is_empty));
            prop_assert!(parse(&bytes).is_err());
            return Ok(());
        };
        let header = parse(&bytes).expect("a reference file is valid");
        prop_assert_eq!(header.header_len, n as u64);
        prop_assert_eq!(header.file_len(), bytes.len() as u64);
        prop_assert_eq!(header.tensors.len(), specs.len());
        prop_assert!(header.tensors.windows(2).all(|w| w[0].data_offsets <= w[1].data_offsets));
        for t in &header.tensors {
            let spec = &specs[&t.name];
            prop_assert_eq!(t.dtype, spec.dtype);
            prop_assert_eq!(&t.shape, &spec.shape.iter().map(|&d| d as u64).collect::<Vec<_>>());
            let info = reference.info(&t.name).expect("same names");
            prop_assert_eq!(t.data_offsets, (info.data_offsets.0 as u64, info.data_offsets.1 as u64));
        }
        let ours: Option<HashMap<String, String>> = header.metadata.map(|m| m.into_iter().collect());
        prop_assert_eq!(ours.as_ref(), reference.metadata().as_ref());

        let mut file = TensorFile::new(Cursor::new(&bytes), &Limits::SERVER).expect("opens");
        for (name, expected) in &data {
            prop_assert_eq!(&file.tensor_bytes(name).expect("reads"), expected);
            let info = file.header().tensor(name).expect("listed").clone();
            let stats = file.float_stats(&info).expect("streams");
            if let Some(stats) = stats {
                let per_element = if info.dtype == Dtype::C64 { 2 } else { 1 };
                prop_assert_eq!(stats.elements, info.num_elements() * per_element);
                prop_assert!(stats.nan + stats.inf + stats.zeros <= stats.elements);
            }
        }
    }

    /// Arbitrary bytes, with or without a known length: Ok or Err, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
        let _ = read_header(&bytes[..], &Limits::SERVER, None);
        let _ = TensorFile::new(Cursor::new(&bytes), &Limits::SERVER);
    }

    /// A plausible prefix followed by arbitrary bytes reaches the JSON and layout checks.
    #[test]
    fn arbitrary_header_text_never_panics(text in "\\{[\"a-zA-Z0-9_:,\\[\\]{} \\-.]{0,200}", data in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(&data);
        let _ = parse(&bytes);
    }

    /// Valid files with bytes flipped, inserted or removed: never a panic, and whatever we
    /// accept the reference accepts with the same tensors (we are only ever stricter).
    #[test]
    fn mutated_files_never_panic_and_stay_within_reference(
        specs in tensors(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let (mut bytes, _) = serialize(&specs, None);
        for (at, byte, op) in edits {
            if bytes.is_empty() { break; }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] ^= byte | 1,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        let ours = parse(&bytes);
        if let Ok(header) = &ours {
            let (_, reference) = safetensors::SafeTensors::read_metadata(&bytes)
                .map_err(|e| TestCaseError::fail(format!("we accepted what the reference refuses: {e}")))?;
            for t in &header.tensors {
                let info = reference.info(&t.name).expect("same names");
                prop_assert_eq!(t.data_offsets, (info.data_offsets.0 as u64, info.data_offsets.1 as u64));
            }
            let mut file = TensorFile::new(Cursor::new(&bytes), &Limits::SERVER).expect("opens");
            for t in header.tensors.clone() {
                let _ = file.float_stats(&t).expect("streams");
            }
        }
    }

    /// Random headers in the space both parsers understand, laid out correctly or off by a
    /// little (gaps, overlaps, wrong sizes, wrong file length): we accept exactly when the
    /// reference does, and then read the same layout.
    #[test]
    fn random_headers_agree_with_reference(
        entries in prop::collection::vec((
            prop::sample::select(vec!["F32", "F16", "BF16", "U8", "F4", "F6_E2M3", "C64", "F8_E8M0", "I64", "X9"]),
            prop::collection::vec(0u64..4, 0..3),
            small_delta(),
            small_delta(),
        ), 0..5),
        meta in prop::option::of(prop::collection::btree_map("[a-z]{1,3}", "[a-z]{0,3}", 0..3)),
        pad in 0usize..9,
        data_delta in small_delta(),
    ) {
        let mut parts: Vec<String> = Vec::new();
        if let Some(m) = &meta {
            parts.push(format!("\"__metadata__\":{}", serde_json::to_string(m).expect("json")));
        }
        let mut offset = 0i64;
        for (i, (dtype, shape, begin_delta, size_delta)) in entries.iter().enumerate() {
            let bits = dtype.parse::<Dtype>().map_or(32, |d| d.bits());
            let size = (shape.iter().product::<u64>() * bits).div_ceil(8) as i64;
            let begin = offset + begin_delta;
            let end = begin + size + size_delta;
            offset = end;
            parts.push(format!(
                "\"t{i}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{begin},{end}]}}"
            ));
        }
        let text = format!("{{{}}}{}", parts.join(","), " ".repeat(pad));
        let mut bytes = (text.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, (offset + data_delta).max(0) as usize));

        let ours = parse(&bytes);
        let reference = safetensors::SafeTensors::read_metadata(&bytes);
        prop_assert_eq!(ours.is_ok(), reference.is_ok(), "ours: {:?}\nreference: {:?}\nheader: {}", ours.as_ref().err(), reference.as_ref().err(), text);
        if let (Ok(h), Ok((_, r))) = (&ours, &reference) {
            for t in &h.tensors {
                let info = r.info(&t.name).expect("same names");
                prop_assert_eq!(t.data_offsets, (info.data_offsets.0 as u64, info.data_offsets.1 as u64));
            }
        }
    }
}

/// Mostly 0, sometimes a small step either way.
fn small_delta() -> impl Strategy<Value = i64> {
    prop_oneof![4 => Just(0i64), 1 => -2i64..=2]
}
