//! Every committed fuzz input (seed corpora and the reproducers of what fuzzing found) run
//! through the checks the fuzz targets run, on stable: what was once found stays fixed without
//! nightly or libFuzzer. The fuzzing itself is `scripts/fuzz`.

#[path = "fuzz/checks.rs"]
mod checks;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// Runs `check` on every file of `tests/fuzz/{corpus,regressions}/<target>/`; fails naming each
/// file whose check failed.
fn run_corpus(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "regressions"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(root.join(dir).join(target)).ok())
        .flat_map(|entries| entries.flatten().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).unwrap();
            catch_unwind(AssertUnwindSafe(|| check(&data))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs failed:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn request_body_corpus_holds() {
    run_corpus("request_body", checks::request_body);
}

#[test]
fn json_walker_corpus_holds() {
    run_corpus("json_walker", checks::json_walker);
}

#[test]
fn sse_reader_corpus_holds() {
    run_corpus("sse_reader", checks::sse_reader);
}

#[test]
fn policy_loader_corpus_holds() {
    run_corpus("policy_loader", checks::policy_loader);
}
