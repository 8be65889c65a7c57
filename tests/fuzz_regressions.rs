//! Every committed fuzz input runs through its target in the ordinary test
//! suite, without AFL++: the corpus each target starts from
//! (`fuzz/corpus/<target>/`, taken from a real journal and real requests) and
//! every input that ever crashed or hung one (`fuzz/regressions/<target>/`).

use std::path::{Path, PathBuf};

fn inputs(directory: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_and_regression_input_runs_through_its_target() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, target) in surge::fuzzing::TARGETS {
        let corpus = inputs(&fuzz.join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ is empty");
        let regressions = inputs(&fuzz.join("regressions").join(name));
        for path in corpus.iter().chain(&regressions) {
            let bytes = std::fs::read(path).expect("readable");
            let outcome = std::panic::catch_unwind(|| target(&bytes));
            assert!(outcome.is_ok(), "{name}: {} panicked", path.display());
        }
    }
}

/// The corpus reaches past the decoders' first check: most of each target's
/// inputs decode (a corpus of garbage would only fuzz the error paths).
#[test]
fn the_corpus_is_made_of_inputs_that_decode() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, target) in surge::fuzzing::TARGETS {
        let corpus = inputs(&fuzz.join("corpus").join(name));
        let decoding = corpus
            .iter()
            .filter(|path| target(&std::fs::read(path).expect("readable")))
            .count();
        assert!(
            decoding * 2 > corpus.len(),
            "{name}: {decoding} of {} decode",
            corpus.len()
        );
    }
}
