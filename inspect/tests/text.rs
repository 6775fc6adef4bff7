//! Text files of a model folder (JSON, YAML, Markdown) are inert data when they are UTF-8
//! throughout and no pickle hides in them; a version's files combine into one verdict.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers build fixtures that cannot fail"
)]

use std::io::Cursor;

use modelhub_inspect::{Declared, Limits, Report, Rules, Status, inspect};

fn verdict(bytes: &[u8], declared: Declared) -> Report {
    inspect(
        &mut Cursor::new(bytes),
        bytes.len() as u64,
        declared,
        Limits::default(),
        &Rules::default(),
    )
}

#[test]
fn utf8_text_declared_as_text_is_cleared() {
    let config = br#"{"architectures": ["BertModel"], "vocab_size": 30522}"#;
    assert_eq!(verdict(config, Declared::Text).status(), Status::Safe);
    // Text that starts with a pickle opcode (`t`, `c`): cleared as text only when declared.
    for text in [&b"torch==2.4\nnumpy\n"[..], b"channels:\n- conda-forge\n"] {
        assert_eq!(
            verdict(text, Declared::Text).status(),
            Status::Safe,
            "{text:?}"
        );
        assert_ne!(
            verdict(text, Declared::Other).status(),
            Status::Safe,
            "{text:?}"
        );
    }
    // A multi-byte character cut by the reader's buffer is still one character.
    let long = "é".repeat(100_000);
    let report = verdict(long.as_bytes(), Declared::Text);
    assert_eq!(report.status(), Status::Safe);
    assert_eq!(report.metadata["bytes"], 200_000);
}

#[test]
fn text_that_is_not_utf8_or_is_a_pickle_is_held() {
    let mut broken = b"{\"a\": \"".to_vec();
    broken.extend_from_slice(&[0xff, 0xfe]);
    broken.extend_from_slice(b"\"}");
    assert_eq!(verdict(&broken, Declared::Text).status(), Status::Error);
    let cut = "é".as_bytes()[..1].to_vec();
    assert_eq!(
        verdict(&[b"ok ", &cut[..]].concat(), Declared::Text).status(),
        Status::Error
    );
    // A protocol-0 pickle is ASCII text: what it imports decides.
    let payload = b"cos\nsystem\n(S'id'\ntR.";
    assert_eq!(verdict(payload, Declared::Text).status(), Status::Unsafe);
}

#[test]
fn a_version_is_as_bad_as_its_worst_file() {
    let safe = verdict(b"{}", Declared::Text);
    let text = verdict(b"# Model card\n", Declared::Text);
    let evil = verdict(b"cos\nsystem\n(S'id'\ntR.", Declared::Other);
    let broken = verdict(&[0xff, 0xfe], Declared::Text);
    let both = Report::combine([("config.json", &safe), ("README.md", &text)]);
    assert_eq!(both.status(), Status::Safe);
    assert_eq!(both.metadata["files"]["README.md"], "safe");
    let with_error = Report::combine([("config.json", &safe), ("x.bin", &broken)]);
    assert_eq!(with_error.status(), broken.status());
    assert!(with_error.error.as_deref().unwrap().starts_with("x.bin: "));
    let all = Report::combine([("a", &safe), ("b", &broken), ("c", &evil)]);
    assert_eq!(all.status(), Status::Unsafe);
    assert_eq!(Report::combine([]).status(), Status::Safe);
}
