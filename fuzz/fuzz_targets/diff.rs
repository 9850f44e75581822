//! `bitsim diff`: two inputs (split at the first NUL byte) compared as
//! projections when both parse, else line by line, as the CLI does. Must never
//! panic; the output is bounded by the inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (a, b) = match data.iter().position(|&c| c == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    };
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    let pa = serde_json::from_str::<bitsim_scenario::Projection>(&a);
    let pb = serde_json::from_str::<bitsim_scenario::Projection>(&b);
    let lines = match (pa, pb) {
        (Ok(pa), Ok(pb)) => bitsim_scenario::diff(&pa, &pb),
        _ => {
            let la: Vec<String> = a.lines().map(str::to_string).collect();
            let lb: Vec<String> = b.lines().map(str::to_string).collect();
            let d = bitsim_scenario::diff_lines(&la, &lb);
            // Every line of `a` is kept or deleted, every line of `b` kept or
            // inserted: deletions minus insertions is the length difference.
            let deleted = d.iter().filter(|l| l.starts_with("- ")).count();
            let inserted = d.len() - deleted;
            assert!(deleted <= la.len() && inserted <= lb.len(), "{d:?}");
            assert_eq!(la.len() as i64 - deleted as i64, lb.len() as i64 - inserted as i64);
            d
        }
    };
    if a == b {
        assert!(lines.is_empty(), "identical inputs differ: {lines:?}");
    }
});
