//! One binary for every target of `surge::fuzzing::TARGETS`, chosen by
//! `SURGE_FUZZ_TARGET`, run by AFL++ (`scripts/fuzz.sh`).

fn main() {
    let name = std::env::var("SURGE_FUZZ_TARGET").unwrap_or_default();
    let Some(&(_, target)) = surge::fuzzing::TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = surge::fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("SURGE_FUZZ_TARGET must be one of {names:?}, not {name:?}");
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        target(data);
    });
}
