//! Files built to slip past the readers where they and the loaders (CPython's unpickler,
//! joblib, PyTorch's zip reader, numpy, Keras) could disagree. None may come out SAFE.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers build fixtures that cannot fail"
)]

use std::io::{Cursor, Write};

use modelhub_inspect::{Declared, Limits, Report, Rules, Status, inspect};

/// `os.system("id")` as protocol 0 opcodes, leaving the stack as it was.
const PAYLOAD: &[u8] = b"cos\nsystem\n(S'id'\ntR0";

fn verdict(bytes: &[u8], declared: Declared) -> Report {
    inspect(
        &mut Cursor::new(bytes),
        bytes.len() as u64,
        declared,
        Limits::default(),
        &Rules::default(),
    )
}

fn assert_held(name: &str, bytes: &[u8], declared: Declared, expected: &[Status]) {
    let report = verdict(bytes, declared);
    assert!(
        expected.contains(&report.status()),
        "{name}: {:?} ({report:?})",
        report.status()
    );
}

fn pickle(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn memo_keys_are_read_as_python_reads_them() {
    for key in ["+0", "-0", "0_0", " 0 "] {
        let bytes = pickle(&[b"Np", key.as_bytes(), b"\n0", PAYLOAD, b"N."]);
        assert_held(key, &bytes, Declared::Other, &[Status::Unsafe]);
        let protocol1 = pickle(&[b"\x80\x01", &bytes]);
        assert_held(key, &protocol1, Declared::Other, &[Status::Unsafe]);
    }
}

#[test]
fn only_bytes_no_unpickler_steps_into_are_data() {
    // Starts with an opcode, fails where this walk could not follow: not cleared.
    assert_held(
        "unterminated",
        b"S'never closed",
        Declared::Other,
        &[Status::Error],
    );
    assert_held(
        "joblib ZF",
        b"ZF0x10\nxxxxxxxx",
        Declared::Other,
        &[Status::Unknown],
    );
    let mut tar = vec![0u8; 1024];
    tar[..8].copy_from_slice(b"storages");
    tar[257..262].copy_from_slice(b"ustar");
    assert_held(
        "tar",
        &tar,
        Declared::Other,
        &[Status::Unknown, Status::Error],
    );
    let text = verdict(b"# A model card\n\nplain text", Declared::Other);
    assert_eq!(text.status(), Status::Safe, "{text:?}");
}

#[test]
fn lzma_with_any_dictionary_is_decompressed() {
    let mut options = liblzma::stream::LzmaOptions::new_preset(1).unwrap();
    options.dict_size(4096);
    let stream = liblzma::stream::Stream::new_lzma_encoder(&options).unwrap();
    let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    encoder.write_all(&pickle(&[PAYLOAD, b"N."])).unwrap();
    let bytes = encoder.finish().unwrap();
    assert_eq!(&bytes[..2], b"\x5d\x00");
    assert_ne!(&bytes[..3], b"\x5d\x00\x00");
    assert_held("lzma", &bytes, Declared::Joblib, &[Status::Unsafe]);
}

#[test]
fn a_format_that_is_also_a_pickle_is_read_as_one_too() {
    let mut hdf5 = pickle(&[PAYLOAD, b"N."]);
    hdf5.resize(512, b' ');
    hdf5.extend_from_slice(b"\x89HDF\r\n\x1a\n");
    hdf5.extend(std::iter::repeat_n(0u8, 2048));
    assert_held("HDF5 user block", &hdf5, Declared::Other, &[Status::Unsafe]);
}

/// A joblib dump of one array wrapper: its state's entries, then what follows its BUILD.
fn joblib(state: &[u8], after: &[u8]) -> Vec<u8> {
    pickle(&[
        b"\x80\x04cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}(",
        b"X\x08\x00\x00\x00subclasscnumpy\nndarray\n",
        b"X\x05\x00\x00\x00orderX\x01\x00\x00\x00C",
        state,
        b"ub",
        after,
        b".",
    ])
}

/// `numpy.dtype(code)` with a BUILD state (`(3, '<', None, names, fields, elsize, -1, flags)`).
fn dtype(code: &[u8], names_fields: &[u8], elsize: &[u8], flags: u8) -> Vec<u8> {
    pickle(&[
        b"X\x05\x00\x00\x00dtypecnumpy\ndtype\nX",
        &(code.len() as u32).to_le_bytes(),
        code,
        b"\x89\x88\x87R(K\x03X\x01\x00\x00\x00<N",
        names_fields,
        elsize,
        b"J\xff\xff\xff\xffK",
        &[flags],
        b"tb",
    ])
}

#[test]
fn joblib_arrays_are_skipped_exactly_as_joblib_reads_them() {
    let f8 = dtype(b"f8", b"NN", b"J\xff\xff\xff\xff", 0);
    // A later `shape` wins, as in a Python dict: no bytes are array data here.
    let duplicate = joblib(
        &pickle(&[
            &f8,
            b"X\x05\x00\x00\x00shapeK\x04\x85X\x05\x00\x00\x00shapeK\x00\x85",
        ]),
        PAYLOAD,
    );
    assert_held(
        "duplicate shape",
        &duplicate,
        Declared::Joblib,
        &[Status::Unsafe],
    );
    // Array data must start after the frame that holds the BUILD: joblib reads it there.
    let unframed = joblib(
        &pickle(&[&f8, b"X\x05\x00\x00\x00shapeK\x01\x85"]),
        &[0u8; 8],
    );
    let mut framed = unframed[..2].to_vec();
    framed.push(0x95);
    framed.extend_from_slice(&((unframed.len() - 2) as u64).to_le_bytes());
    framed.extend_from_slice(&unframed[2..]);
    assert_held(
        "array in a frame",
        &framed,
        Declared::Joblib,
        &[Status::Error],
    );
    assert_eq!(verdict(&unframed, Declared::Joblib).status(), Status::Safe);
    // A dtype whose state says it holds objects: the data is a nested pickle.
    let objects = dtype(b"V8", b"NN", b"K\x08", 1);
    let hidden = joblib(
        &pickle(&[&objects, b"X\x05\x00\x00\x00shapeK\x01\x85"]),
        &pickle(&[PAYLOAD, b"N."]),
    );
    assert_held("object flags", &hidden, Declared::Joblib, &[Status::Unsafe]);
    // Inline arrays in a file meant for a plain unpickler: their bytes would be opcodes.
    assert_held("not joblib", &unframed, Declared::Other, &[Status::Unknown]);
}

#[test]
fn numpy_headers_are_read_strictly() {
    for descr in ["'object'", "'i4,O'", "[(\"a'\", '|O')]"] {
        let header = format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (1,), }}\n");
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
        npy.extend_from_slice(header.as_bytes());
        npy.extend_from_slice(&pickle(&[b"\x80\x03", PAYLOAD, b"N."]));
        let report = verdict(&npy, Declared::Other);
        assert_ne!(report.status(), Status::Safe, "{descr}: {report:?}");
    }
}

#[test]
fn keras_configs_are_found_however_they_are_spaced() {
    let mut file = b"\x89HDF\r\n\x1a\n\x00\x00model_config\x00".to_vec();
    file.extend_from_slice(
        br#"{ "class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {}}]}}"#,
    );
    file.extend_from_slice(br#"{"class_name": "Dense", "config": {}}"#);
    assert_held("spaced", &file, Declared::Other, &[Status::Unsafe]);
    let mut hidden = b"\x89HDF\r\n\x1a\n\x00\x00model_config\x00".to_vec();
    hidden.extend_from_slice(br#"{"config": {"layers": []}, "class_name": "Sequential"}"#);
    assert_held("key not first", &hidden, Declared::Other, &[Status::Error]);
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn every_zip_entry_that_is_a_pickle_is_walked() {
    let evil = pickle(&[PAYLOAD, b"N."]);
    let benign = b"\x80\x02}q\x00.".as_slice();
    let case = zip_of(&[("archive/Data.pkl", &evil), ("archive/x.pkl", benign)]);
    assert_held("case", &case, Declared::Other, &[Status::Unsafe]);
    let unnamed = zip_of(&[("archive/x.pkl", benign), ("archive/extra", &evil)]);
    assert_held("unnamed", &unnamed, Declared::Other, &[Status::Unsafe]);
    let collide = zip_of(&[("archive/data.pkl", benign), ("archive/DATA.pkl", &evil)]);
    assert_held(
        "collide",
        &collide,
        Declared::Other,
        &[Status::Error, Status::Unsafe],
    );
}

#[test]
fn a_nul_ends_a_memo_key_as_in_c() {
    let bytes = pickle(&[b"Np0\x00\n0", PAYLOAD, b"N."]);
    assert_held("nul key", &bytes, Declared::Other, &[Status::Unsafe]);
}

fn keras_zip(config: &str) -> Vec<u8> {
    zip_of(&[("config.json", config.as_bytes()), ("metadata.json", b"{}")])
}

#[test]
fn other_readings_of_the_same_bytes_are_cleared_too() {
    let lambda = r#"{"module": "keras", "class_name": "Sequential", "config": {"layers": [{"module": "keras.layers", "class_name": "Lambda", "config": {}}]}}"#;
    // A safetensors file with a Keras archive at its end (zip readers look there first).
    let mut st = 2u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    st.extend_from_slice(&keras_zip(lambda));
    assert_held("appended zip", &st, Declared::Other, &[Status::Unsafe]);
    // A torch module inside a Keras config is loaded with torch.load.
    let wrapper = r#"{"module": "keras.layers", "class_name": "TorchModuleWrapper", "config": {"module": "AAAA"}, "registered_name": "TorchModuleWrapper"}"#;
    assert_held(
        "torch wrapper",
        &keras_zip(wrapper),
        Declared::Other,
        &[Status::Unsafe],
    );
    // Two end records: zip readers disagree on which one counts.
    let mut twice = keras_zip(r#"{"module": "keras", "class_name": "Sequential", "config": {}}"#);
    let again = keras_zip(lambda);
    twice.extend_from_slice(&again);
    assert_held(
        "two archives",
        &twice,
        Declared::Other,
        &[Status::Error, Status::Unsafe],
    );
    // An escaped key hides a config from a byte search.
    let mut hdf5 = b"\x89HDF\r\n\x1a\n\x00\x00model_config\x00".to_vec();
    hdf5.extend_from_slice(br#"{"class\u005fname": "Sequential", "config": {"layers": [{"class\u005fname": "Lambda"}, {"class_name": "Dense", "config": {}}]}}"#);
    assert_held(
        "escaped key",
        &hdf5,
        Declared::Other,
        &[Status::Error, Status::Unsafe],
    );
}

#[test]
fn an_old_tar_archive_is_held() {
    let mut tar = vec![0u8; 1024];
    tar[..2].copy_from_slice(b"zz");
    tar[100..108].copy_from_slice(b"0000644\0");
    tar[124..136].copy_from_slice(b"00000000000\0");
    let sum: u32 = tar[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    tar[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    assert_held("v7 tar", &tar, Declared::Other, &[Status::Unknown]);
}

#[test]
fn joblib_array_bytes_are_also_read_as_a_plain_unpickler_reads_them() {
    let f8 = dtype(b"f8", b"NN", b"J\xff\xff\xff\xff", 0);
    // 4 doubles of "array data" that pickle.load runs as opcodes.
    let mut payload = PAYLOAD.to_vec();
    payload.resize(32, b'N');
    let bytes = joblib(
        &pickle(&[&f8, b"X\x05\x00\x00\x00shapeK\x04\x85"]),
        &payload,
    );
    assert_held("array payload", &bytes, Declared::Joblib, &[Status::Unsafe]);
    // The wrapper made by a call that runs its `__init__` is not followed.
    let called = pickle(&[b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)R}b."]);
    assert_held(
        "wrapper via REDUCE",
        &called,
        Declared::Joblib,
        &[Status::Error],
    );
}
