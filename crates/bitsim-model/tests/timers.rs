//! Timers, bits-spec §3: MinimumRetryDelay (§3.1), NoProgressTimeout (§3.2),
//! MaximumDownloadTime (§3.3), JobInactivityTimeout (§3.5) and DO's retention (§8.1).
//! All in virtual time.

mod common;

use bitsim_model::*;
use common::*;
use JobState::*;

#[test]
fn min_retry_delay_default_600_s() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.wait_secs(7);
    h.fail_transient(j);
    assert_eq!(h.svc.poll_timeout(), Some(Time::from_secs(607)));
    h.wait_secs(599);
    assert_eq!(h.state(j), TransientError);
    h.wait_secs(1);
    assert_eq!(h.state(j), Connecting);
}

#[test]
fn min_retry_delay_is_raised_to_the_5_s_floor() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    for (set, got) in [(0, 5), (1, 5), (4, 5), (5, 5), (6, 6), (60, 60)] {
        h.svc.set_minimum_retry_delay(h.now, j, set).unwrap();
        assert_eq!(h.svc.minimum_retry_delay(j), Ok(got), "set {set}");
    }
    h.svc.set_minimum_retry_delay(h.now, j, 1).unwrap();
    h.fail_transient(j);
    h.wait_secs(4);
    assert_eq!(h.state(j), TransientError);
    h.wait_secs(1);
    assert_eq!(h.state(j), Connecting, "retried after 5 s, not 1 s");
}

/// Fails every attempt of `j` until it reaches ERROR; returns when it did.
fn fail_every_retry(h: &mut H, j: JobId, limit: Time) -> Time {
    h.fail_transient(j);
    while h.state(j) != Error {
        let at = h.svc.poll_timeout().expect("a timer is pending");
        assert!(at <= limit, "still {} at {}", h.state(j), at);
        h.run_until(at);
        if h.state(j) == Connecting {
            h.fail_transient(j);
        }
    }
    h.now
}

#[test]
fn no_progress_timeout_default_14_days() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    assert_eq!(h.svc.no_progress_timeout(j), Ok(1_209_600));
    let fourteen_days = Time::from_secs(1_209_600);
    let at = fail_every_retry(&mut h, j, fourteen_days);
    assert_eq!(at, fourteen_days);
    assert_eq!(
        h.svc.error(j).unwrap().hresult,
        Hresult::http(503),
        "last error kept (UNVERIFIED)"
    );
    // Failures at 0, 600 s, …, 14 d − 600 s: 2016, every one counted (ref: bits-spec §3.4);
    // the timeout ends the job before the retry due at the same instant.
    assert_eq!(h.svc.error_count(j), Ok(2016));
    h.assert_trace(&format!("job {j} TRANSIENT_ERROR -> ERROR (no_progress_timeout)"));
}

#[test]
fn no_progress_timeout_zero_makes_every_error_fatal() {
    let mut h = H::bits();
    let j = h.transferring(JobType::Download, 1);
    h.svc.set_no_progress_timeout(h.now, j, 0).unwrap();
    h.ev(
        j,
        TransferEvent::Failed(TransferFailure::Network(NetworkFailure::ConnectionReset)),
    );
    assert_eq!(h.state(j), Error);
    assert_eq!(h.svc.error(j).unwrap().hresult, Hresult(0x8007_2EFE));
    h.assert_trace(&format!("job {j} error 0x80072EFE"));
    h.assert_trace("fatal file=0 errors=1");
}

#[test]
fn no_progress_timeout_set_to_zero_in_transient_error_goes_error_now() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.fail_transient(j);
    h.wait_secs(30);
    h.svc.set_no_progress_timeout(h.now, j, 0).unwrap();
    assert_eq!(h.state(j), Error);
    h.assert_trace(&format!("job {j} TRANSIENT_ERROR -> ERROR (no_progress_timeout)"));
}

#[test]
fn no_progress_timeout_is_reset_by_progress() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.svc.set_no_progress_timeout(h.now, j, 3600).unwrap();
    h.svc.set_minimum_retry_delay(h.now, j, 600).unwrap();
    h.fail_transient(j); // t = 0: the no-progress period starts
    for _ in 0..3 {
        h.wait_secs(600);
        h.fail_transient(j);
    }
    // t = 2400: the retry connects and makes progress, then fails again.
    h.wait_secs(600);
    h.connect(j);
    h.ev(j, TransferEvent::Progress { bytes: 10 });
    h.fail_transient(j);
    let restart = h.now;
    assert_eq!(restart, Time::from_secs(2400));
    let at = fail_every_retry_from_transient(&mut h, j);
    assert_eq!(
        at,
        restart.plus(Span::from_secs(3600)),
        "a new hour from the last progress"
    );
}

fn fail_every_retry_from_transient(h: &mut H, j: JobId) -> Time {
    while h.state(j) != Error {
        let at = h.svc.poll_timeout().expect("a timer is pending");
        h.run_until(at);
        if h.state(j) == Connecting {
            h.fail_transient(j);
        }
    }
    h.now
}

#[test]
fn no_progress_timeout_shorter_than_retry_delay_goes_error_at_once() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.svc.set_no_progress_timeout(h.now, j, 300).unwrap(); // retry delay stays 600
    h.fail_transient(j);
    assert_eq!(h.state(j), Error);
    assert_eq!(h.svc.error_count(j), Ok(1));
}

#[test]
fn max_download_time_counts_only_active_time_and_resume_resets_it() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.svc.set_maximum_download_time(h.now, j, 100).unwrap();
    h.svc.set_minimum_retry_delay(h.now, j, 1000).unwrap();
    h.wait_secs(60); // 60 s active
    h.fail_transient(j);
    h.wait_secs(1000); // in TRANSIENT_ERROR: not counted; retried at the end
    assert_eq!(h.state(j), Connecting);
    h.wait_secs(39);
    assert_eq!(h.state(j), Connecting, "99 s of active time");
    h.wait_secs(1);
    assert_eq!(h.state(j), Error);
    let e = h.svc.error(j).unwrap();
    assert_eq!(e.hresult, Hresult::BG_E_MAXDOWNLOAD_TIMEOUT);
    h.assert_trace(&format!("job {j} CONNECTING -> ERROR (max_download_time)"));
    // Resume resets the clock: another full 100 s.
    h.resume(j).unwrap();
    h.wait_secs(99);
    assert_eq!(h.state(j), Connecting);
    h.wait_secs(1);
    assert_eq!(h.state(j), Error);
}

#[test]
fn inactivity_90_days_cancels_and_activity_resets_it() {
    let mut h = H::bits();
    let idle = h.job_with(JobType::Download, 1);
    let busy = h.job_with(JobType::Download, 1);
    h.wait(Span::from_days(60));
    h.svc.set_description(h.now, busy, "still here").unwrap(); // a property change is activity
    h.wait(Span::from_days(30));
    assert_eq!(h.state(idle), Cancelled);
    assert_eq!(h.state(busy), Suspended);
    h.assert_trace(&format!("job {idle} SUSPENDED -> CANCELLED (inactivity_timeout)"));
    assert!(h
        .log
        .iter()
        .any(|e| matches!(e, Effect::DeleteTempFiles { job, .. } if *job == idle)));
    h.wait(Span::from_days(60));
    assert_eq!(h.state(busy), Cancelled);
    assert!(!h.svc.enum_jobs(h.user).contains(&busy));
}

#[test]
fn inactivity_applies_to_error_and_transferred_jobs() {
    let mut h = H::bits();
    let err = h.job_in(Error, JobType::Download);
    let mut h2 = H::bits();
    let done = h2.job_in(Transferred, JobType::Download);
    for (h, j) in [(&mut h, err), (&mut h2, done)] {
        h.wait(Span::from_days(90));
        assert_eq!(h.state(j), Cancelled);
    }
}

#[test]
fn do_retention_30_days_cancels_even_with_activity() {
    let mut h = H::dos();
    let j = h.job_with(JobType::Download, 1);
    for _ in 0..29 {
        h.wait(Span::from_days(1));
        h.svc.set_priority(h.now, j, 2).unwrap();
    }
    assert_eq!(h.state(j), Suspended);
    h.wait(Span::from_days(1));
    assert_eq!(h.state(j), Cancelled);
    h.assert_trace(&format!("job {j} SUSPENDED -> CANCELLED (retention_expired)"));
}

#[test]
fn do_has_no_inactivity_timeout_before_retention() {
    let mut h = H::dos();
    let j = h.job_in(Transferred, JobType::Download);
    h.wait(Span::from_days(29));
    assert_eq!(h.state(j), Transferred);
}

#[test]
fn do_no_progress_timeout_defaults_follow_priority() {
    let mut h = H::dos();
    let j = h.create(JobType::Download);
    assert_eq!(h.svc.no_progress_timeout(j), Ok(86_400), "background");
    h.svc.set_priority(h.now, j, 0).unwrap();
    assert_eq!(h.svc.no_progress_timeout(j), Ok(3_600), "foreground");
    h.svc.set_no_progress_timeout(h.now, j, 500).unwrap();
    h.svc.set_priority(h.now, j, 2).unwrap();
    assert_eq!(h.svc.no_progress_timeout(j), Ok(500), "an explicit value sticks");
}

#[test]
fn do_transient_errors_end_in_error_after_no_progress_timeout() {
    let mut h = H::dos();
    let j = h.connecting(JobType::Download, 1);
    h.svc.set_priority(h.now, j, 0).unwrap(); // foreground: 3,600 s
    h.fail_http(j, 404); // DO retries 404
    while h.state(j) != Error {
        let at = h.svc.poll_timeout().unwrap();
        h.run_until(at);
        if h.state(j) == Transferring {
            h.fail_http(j, 404);
        }
    }
    assert_eq!(h.now, Time::from_secs(3600));
    // ref: Delivery Optimization return values: DO_E_DOWNLOAD_NO_PROGRESS
    assert_eq!(h.svc.error(j).unwrap().hresult, Hresult::DO_E_DOWNLOAD_NO_PROGRESS);
}
