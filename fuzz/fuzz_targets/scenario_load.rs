//! Scenario files: any bytes through the loader's text checks and parser must
//! give a scenario or a `file:line:col: field` error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match bitsim_scenario::parse_scenario(text, "fuzz.json") {
        Ok(s) => {
            // Whatever loads names only files inside the run's directory.
            use bitsim_scenario::Step;
            for entry in &s.steps {
                let names: Vec<&str> = match &entry.step {
                    Step::AddFile { local, .. } => vec![local],
                    Step::AddFiles { files, .. } => files.iter().map(|f| f.local.as_str()).collect(),
                    Step::WriteFile { name, size } => {
                        assert!(*size <= bitsim_scenario::validate::MAX_WRITE_FILE_BYTES);
                        vec![name]
                    }
                    Step::SetReplyFileName { local: Some(l), .. } => vec![l],
                    Step::ExpectFiles { present, absent } => present
                        .iter()
                        .map(|f| f.name.as_str())
                        .chain(absent.iter().map(String::as_str))
                        .collect(),
                    _ => vec![],
                };
                for n in names {
                    assert!(
                        bitsim_scenario::validate::check_relative_name(n).is_ok(),
                        "{n:?} loaded"
                    );
                }
            }
        }
        Err(e) => {
            assert_eq!(e.file, "fuzz.json");
            assert!(!e.message.is_empty());
        }
    }
});
