//! `/_bitsim/*` control paths: the request log and the active plan, so an
//! external client's run (real BITS on Windows) can switch faults. Loopback only.

use std::sync::Arc;

use hyper::body::Incoming;

use crate::handler::read_body;
use crate::plan::Plan;
use crate::reply::Reply;
use crate::server::{ConnInfo, Inner};

pub(crate) async fn control(
    inner: &Arc<Inner>,
    method: &http::Method,
    path: &str,
    body: Incoming,
    conn: ConnInfo,
) -> Reply {
    if !conn.loopback {
        return Reply::text(403, "control paths answer only on loopback\n");
    }
    let server = crate::MockServer { inner: inner.clone() };
    match (method.as_str(), path) {
        ("GET", "/_bitsim/log") => Reply::json(200, &server.log()),
        ("DELETE", "/_bitsim/log") => {
            server.clear_log();
            Reply::new(204)
        }
        ("GET", "/_bitsim/plan") => Reply::json(200, &server.plan()),
        ("GET", "/_bitsim/schema") => Reply::json(200, &Plan::json_schema()),
        ("PUT", "/_bitsim/plan") => {
            // The plan's own body limit does not apply here: a plan with a tiny
            // `max_body_bytes` must not lock out the next plan. Control bodies get
            // at least the default limit (1 MiB).
            let limit = inner
                .state()
                .plan
                .limits
                .max_body_bytes
                .max(crate::plan::Limits::default().max_body_bytes);
            let bytes = match read_body(body, limit, inner.limits.body_idle_timeout).await {
                Ok(b) => b,
                Err(true) => return Reply::text(413, "plan too large\n"),
                Err(false) => return Reply::text(400, "could not read the body\n"),
            };
            let Ok(text) = std::str::from_utf8(&bytes) else {
                return Reply::text(400, "plan is not UTF-8\n");
            };
            match Plan::from_json_str(text, "PUT /_bitsim/plan") {
                Ok(plan) => {
                    // The upload directory is fixed at start: a remote client
                    // must not point uploads elsewhere on this machine.
                    if plan.upload.dir != inner.state().plan.upload.dir {
                        return Reply::text(400, "upload.dir cannot be changed over HTTP\n");
                    }
                    server.set_plan(plan);
                    Reply::text(200, "plan replaced\n")
                }
                Err(e) => Reply::text(400, format!("{e}\n")),
            }
        }
        (_, "/_bitsim/log" | "/_bitsim/plan" | "/_bitsim/schema") => {
            let mut r = Reply::text(405, "method not allowed\n");
            r.header("Allow", "GET, PUT, DELETE");
            r
        }
        _ => Reply::text(404, "not found\n"),
    }
}
