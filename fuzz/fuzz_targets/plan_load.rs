//! Server plans: any text through `Plan::from_json_str` gives a plan whose
//! numbers are in range, or an error with a position, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match bitsim_server::Plan::from_json_str(text, "fuzz-plan.json") {
        // A plan that loads survives the round trip the control API does.
        Ok(plan) => {
            let again = bitsim_server::Plan::from_json_str(&plan.to_json_pretty(), "again");
            assert!(again.is_ok(), "a loaded plan must reload: {again:?}");
        }
        Err(e) => assert_eq!(e.origin, "fuzz-plan.json"),
    }
});
