//! The example plans in fixtures/plans, the checked-in JSON Schema, and
//! determinism of whole runs.

mod common;
use std::path::PathBuf;

use bitsim_server::{MockServer, Plan};
use common::{bits, GUID};

fn plans_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/plans")
}

#[test]
fn every_fixture_plan_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(plans_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") || name == "plan.schema.json" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        Plan::from_json_str(&text, &name).unwrap_or_else(|e| panic!("{e}"));
        n += 1;
    }
    assert!(n >= 5);
}

/// fixtures/plans/plan.schema.json is the schema of `Plan`; regenerate with
/// `BITSIM_UPDATE_SCHEMA=1 cargo test -p bitsim-server --test plans`.
#[test]
fn schema_file_is_current() {
    let path = plans_dir().join("plan.schema.json");
    let want = serde_json::to_string_pretty(&Plan::json_schema()).unwrap() + "\n";
    if std::env::var_os("BITSIM_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "plan.schema.json is stale: set BITSIM_UPDATE_SCHEMA=1 and rerun"
    );
}

#[test]
fn plan_errors_name_file_line_column_and_field() {
    let text = "{\n  \"upload\": {\n    \"exists_status\": \"409\"\n  }\n}\n";
    let e = Plan::from_json_str(text, "bad.json").unwrap_err();
    assert_eq!(
        (e.origin.as_str(), e.line, e.path.as_str()),
        ("bad.json", 3, "upload.exists_status")
    );
    assert!(e.column > 0);
    let e = Plan::from_json_str("{\"rules\":[{\"match\":{\"from\":3,\"to\":1}}]}", "p").unwrap_err();
    assert_eq!(e.path, "rules[0].match.to");
    let e = Plan::from_json_str("{\"bogus\":1}", "p").unwrap_err();
    assert!(e.message.contains("unknown field"), "{e}");
    let e = Plan::from_json_str("{} x", "p").unwrap_err();
    assert_eq!(e.line, 1);
}

async fn run_once(seed: u64) -> (Vec<bitsim_server::RequestLogEntry>, Vec<u8>, String) {
    let plan = std::fs::read_to_string(plans_dir().join("flaky-download.json")).unwrap();
    let server = MockServer::new(Plan::from_json_str(&plan, "flaky").unwrap(), seed);
    let t = common::T::Mem(server.clone());
    let mut c = t.client().await;
    let mut body = Vec::new();
    for i in 0..8 {
        let r = c
            .send(common::req(
                "GET",
                "/files/app.msi",
                &[("Range", &format!("bytes={}-{}", i * 1000, i * 1000 + 99))],
                b"",
            ))
            .await;
        match r {
            Ok(r) => body.extend_from_slice(&r.body),
            Err(_) => c = t.client().await,
        }
    }
    let r = c
        .send(bits(
            "/upload/x",
            "Create-Session",
            None,
            &[("BITS-Supported-Protocols", GUID)],
            b"",
        ))
        .await
        .unwrap();
    (server.log(), body, r.h("bits-session-id").unwrap().to_string())
}

/// Same plan + same seed = the same log, bytes and session ids, in virtual time.
#[tokio::test(start_paused = true)]
async fn same_seed_same_run() {
    let a = run_once(11).await;
    let b = run_once(11).await;
    assert_eq!(a, b);
    let c = run_once(12).await;
    assert_ne!(a.2, c.2);
}
