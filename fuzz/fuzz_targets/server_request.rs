//! The mock server: any bytes sent on an in-memory connection (under one of
//! the fixture plans, picked by the first byte) get an answer or a closed
//! connection, never a panic or a hang. The clock is paused, so planned delays
//! and the server's timeouts pass in virtual time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PLANS: &[&str] = &[
    "{}",
    include_str!("../../fixtures/plans/default.json"),
    include_str!("../../fixtures/plans/flaky-download.json"),
    include_str!("../../fixtures/plans/upload-faults.json"),
    include_str!("../../fixtures/plans/upload-reply-failures.json"),
    include_str!("../../fixtures/plans/file-changes.json"),
    include_str!("../../fixtures/plans/spec-mode.json"),
];

thread_local! {
    static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    static SERVER: bitsim_server::MockServer = bitsim_server::MockServer::new(bitsim_server::Plan::default(), 7);
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, request)) = data.split_first() else {
        return;
    };
    let plan = bitsim_server::Plan::from_json_str(PLANS[pick as usize % PLANS.len()], "fixture").expect("fixture plan");
    let server = SERVER.with(|s| s.clone());
    server.set_plan(plan);
    server.clear_log();
    RT.with(|rt| {
        rt.block_on(async {
            let mut conn = server.connect_in_memory();
            let exchange = async {
                let _ = conn.write_all(request).await;
                let _ = conn.shutdown().await;
                // Read at most 4 MiB of answer: `/bytes/N` may be large.
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0usize;
                while total < (4 << 20) {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            };
            // Virtual time: a stalled answer ends here, not in a real hour.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(3600), exchange).await;
        })
    });
});
