//! Every reader on every committed model file, on truncated copies of each, and on every input
//! that once crashed a fuzz target (`fuzz/regressions/`): each call returns, and a truncated
//! pickle or GGUF header is reported as an error.

use std::{
    io::Cursor,
    path::{Path, PathBuf},
    time::Duration,
};

use modelhub_inspect::{
    Budget, Declared, Limits, Rules, Status, gguf, inspect, pickle, safetensors,
};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .filter(|p| !matches!(p.extension().and_then(|e| e.to_str()), Some("py" | "md")))
                .filter(|p| p.file_name().is_some_and(|n| n != "README"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn run_all(bytes: &[u8]) -> modelhub_inspect::Report {
    let mut budget = Budget::new(Duration::from_secs(5));
    let mut summary = pickle::PickleSummary::default();
    let _ = pickle::walk_stream(&mut &bytes[..], &mut budget, &mut summary);
    let _ = safetensors::read(&mut &bytes[..], bytes.len() as u64);
    let _ = gguf::read(&mut &bytes[..], &mut budget);
    let limits = Limits {
        time: Duration::from_secs(5),
        ..Limits::default()
    };
    let rules = Rules::default();
    let _ = inspect(
        &mut Cursor::new(bytes),
        bytes.len() as u64,
        Declared::Onnx,
        limits,
        &rules,
    );
    inspect(
        &mut Cursor::new(bytes),
        bytes.len() as u64,
        Declared::Other,
        limits,
        &rules,
    )
}

#[test]
fn every_reader_returns_on_fixtures_truncations_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut inputs = files(&root.join("tests/fixtures"));
    inputs.extend(files(&root.join("fuzz/regressions")));
    assert!(inputs.len() >= 8, "the fixtures are missing: {inputs:?}");
    for path in inputs {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let len = bytes.len();
        for cut in [
            0,
            1,
            2,
            8,
            9,
            64,
            len / 3,
            len / 2,
            len.saturating_sub(1),
            len,
        ] {
            let cut = cut.min(len);
            let report = run_all(&bytes[..cut]);
            let is_pickle = path.extension().is_some_and(|e| e == "pkl");
            if is_pickle && cut > 2 && cut < len {
                assert!(
                    matches!(report.status(), Status::Error | Status::Unsafe),
                    "{} cut at {cut}: {report:?}",
                    path.display()
                );
            }
        }
    }
}
