//! The two lanes of the simulator: in-memory pipes under a paused clock
//! (deterministic) and real TCP sockets on 127.0.0.1 under the wall clock. The same
//! scenario must give the same projection on both.

use bitsim_engine::{SimConfig, Simulator};
use bitsim_model::Flavor;
use bitsim_scenario::{load_file, run, LoadedScenario};
use std::path::Path;

fn fixture(rel: &str) -> LoadedScenario {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/scenarios");
    load_file(&root.join(rel), &root).unwrap_or_else(|e| panic!("{e}"))
}

fn scratch(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("bitsim-lanes-{tag}-{}", std::process::id()))
}

#[test]
fn tcp_lane_gives_the_same_projection_as_the_in_memory_lane() {
    // Scenarios that are short in real time: downloads, a fatal error, redirects,
    // a full upload, a 416 resync.
    for rel in [
        "api/resume-download-lifecycle.json",
        "api/fatal-error-stops-later-files.json",
        "errors/missing-content-length-on-head.json",
        "errors/redirect-chain-followed.json",
        "uploads/upload-success.json",
        "uploads/fragment-416-resync.json",
    ] {
        let loaded = fixture(rel);
        let memory = bitsim_engine::run_scenario(&loaded, Flavor::Bits, 1, &scratch("mem")).unwrap();
        assert!(memory.passed(), "{rel}: {:?}", memory.verdict);

        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let tcp = rt.block_on(async {
            let server = bitsim_server::MockServer::new(loaded.plan.clone(), 1);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn({
                let server = server.clone();
                async move {
                    server
                        .serve_tcp(listener, async {
                            let _ = stopped.await;
                        })
                        .await
                }
            });
            let mut config = SimConfig::new(Flavor::Bits, 1, loaded.plan.clone(), scratch("tcp"));
            config.tcp = Some(addr);
            config.server = Some(server.clone());
            let mut sim = Simulator::new(config);
            let report = run(&loaded, &mut sim, 1).await;
            let _ = stop.send(());
            let _ = serving.await;
            report
        });
        let _ = std::fs::remove_dir_all(scratch("tcp"));
        assert!(tcp.passed(), "{rel} over TCP: {:?}\n{}", tcp.verdict, tcp.trace_text());
        assert_eq!(
            bitsim_scenario::diff(&memory.projection, &tcp.projection),
            Vec::<String>::new(),
            "{rel}: lanes disagree"
        );
    }
}
