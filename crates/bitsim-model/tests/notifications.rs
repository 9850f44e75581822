//! Notifications, bits-spec §4 (flags §4.1, registration §4.2, callback methods and the
//! four-per-user limit §4.3, command line §4.4), and the environment events that touch
//! them: network lost / restored, logoff / logon, service restart.

mod common;

use bitsim_model::*;
use common::*;
use JobState::*;
use NotificationKind::*;

/// A job with a registered callback (IBackgroundCopyCallback2) that finishes its files.
fn transferred_with_callback(h: &mut H, files: usize) -> JobId {
    let j = h.job_with(JobType::Download, files);
    h.cb(j, 1);
    h.resume(j).unwrap();
    h.finish_all(j);
    assert_eq!(h.state(j), Transferred);
    j
}

fn kinds(ns: &[Notification]) -> Vec<(NotificationKind, JobId)> {
    ns.iter().map(|n| (n.kind, n.job)).collect()
}

#[test]
fn default_flags_deliver_job_transferred_not_modification() {
    let mut h = H::bits();
    let j = transferred_with_callback(&mut h, 1);
    let ns = h.notifications();
    assert_eq!(kinds(&ns), [(JobTransferred, j)]);
    assert_eq!(ns[0].attempt, 1);
    h.assert_trace(&format!(
        "notify JobTransferred {j} #1 delivered user=alice in_flight=1"
    ));
    h.svc.notification_returned(h.now, ns[0].id, Hresult::S_OK);
    h.assert_trace(&format!("notify JobTransferred {j} #1 returned 0x00000000 (S_OK)"));
    assert_eq!(h.svc.notifications_in_flight(h.user), 0);
    h.wait(Span::from_days(1));
    assert!(h.notifications().is_empty(), "accepted: never again");
}

#[test]
fn job_error_delivered_with_the_error() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 1);
    h.cb(j, 1);
    h.resume(j).unwrap();
    h.fail_fatal(j);
    let ns = h.notifications();
    assert_eq!(kinds(&ns), [(JobError, j)]);
    assert_eq!(ns[0].error, Some((Hresult::http(403), ErrorContext::RemoteFile)));
}

#[test]
fn at_least_once_after_late_registration() {
    for fatal in [false, true] {
        let mut h = H::bits();
        let j = h.connecting(JobType::Download, 1);
        if fatal {
            h.fail_fatal(j);
        } else {
            h.finish_all(j);
        }
        h.wait_secs(3600);
        assert!(h.notifications().is_empty(), "nobody registered yet");
        h.cb(j, 5);
        let ns = h.notifications();
        let want = if fatal { JobError } else { JobTransferred };
        assert_eq!(kinds(&ns), [(want, j)], "registered after the event");
        // If the pointer became invalid, a new pointer gets the notification again.
        h.svc
            .notification_returned(h.now, ns[0].id, Hresult::RPC_E_DISCONNECTED);
        assert_eq!(h.svc.notify_interface(j), Ok(None));
        h.wait_secs(3600);
        assert!(h.notifications().is_empty());
        h.cb(j, 6);
        let again = h.notifications();
        assert_eq!(kinds(&again), [(want, j)]);
        assert_eq!(again[0].callback.id, 6);
        assert_eq!(again[0].attempt, 2);
    }
}

#[test]
fn no_job_error_for_transient_errors() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 1);
    h.cb(j, 1);
    h.svc.set_notify_flags(h.now, j, 0x3).unwrap();
    h.resume(j).unwrap();
    for _ in 0..5 {
        h.fail_transient(j);
        h.wait_secs(600);
    }
    h.svc.handle_env(h.now, EnvEvent::NetworkLost);
    h.wait_secs(600);
    assert!(h.all_notifications().is_empty(), "{}", h.trace());
    h.assert_no_trace("notify JobError");
}

#[test]
fn job_error_after_no_progress_timeout() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 1);
    h.cb(j, 1);
    h.svc.set_no_progress_timeout(h.now, j, 900).unwrap();
    h.resume(j).unwrap();
    h.fail_transient(j);
    h.wait_secs(600);
    h.fail_transient(j);
    assert!(h.notifications().is_empty());
    h.wait_secs(300);
    assert_eq!(h.state(j), Error);
    assert_eq!(kinds(&h.notifications()), [(JobError, j)], "JobError follows (§3.2)");
}

/// Returns `hr` for every delivery of the final notification of `j` until it stops;
/// gives the times of the deliveries.
fn delivery_times(seed: u64, answers: &[Hresult]) -> Vec<Time> {
    let mut h = H::with_seed(Flavor::Bits, seed);
    let j = transferred_with_callback(&mut h, 1);
    let mut times = Vec::new();
    for &hr in answers {
        let n = loop {
            if let Some(n) = h.notifications().into_iter().find(|n| n.job == j) {
                break n;
            }
            let at = h.svc.poll_timeout().expect("a re-delivery is scheduled");
            h.run_until(at);
        };
        times.push(h.now);
        h.svc.notification_returned(h.now, n.id, hr);
    }
    h.wait(Span::from_days(1));
    assert!(h.notifications().is_empty(), "S_OK ends the re-delivery");
    times
}

#[test]
fn retried_until_s_ok_at_the_seeded_interval() {
    let answers = [Hresult::E_FAIL, Hresult(0x8001_0001), Hresult::S_FALSE, Hresult::S_OK];
    let a = delivery_times(1, &answers);
    assert_eq!(a.len(), 4);
    for w in a.windows(2) {
        let gap = w[1].since(w[0]);
        // BITS profile: the "arbitrary interval" is drawn from 30–90 s (UNVERIFIED, §11 q9).
        assert!((Span::from_secs(30)..=Span::from_secs(90)).contains(&gap), "{gap}");
    }
    assert_eq!(a, delivery_times(1, &answers), "same seed, same intervals");
    let other: Vec<_> = (2..10).map(|s| delivery_times(s, &answers)).collect();
    assert!(other.iter().any(|o| *o != a), "the interval comes from the seed");
}

#[test]
fn s_false_is_not_success_for_job_transferred() {
    // "Any other return [than S_OK]": BITS keeps calling (§4.3; S_FALSE UNVERIFIED §11 q9).
    let mut h = H::bits();
    let j = transferred_with_callback(&mut h, 1);
    let n = h.notifications().remove(0);
    h.svc.notification_returned(h.now, n.id, Hresult::S_FALSE);
    h.wait_secs(90);
    assert_eq!(kinds(&h.notifications()), [(JobTransferred, j)]);
}

#[test]
fn cmdline_runs_when_callback_fails_and_callback_is_not_called_again() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 1);
    h.cb(j, 1);
    h.svc
        .set_notify_cmdline(h.now, j, Some("C:\\app.exe"), Some("C:\\app.exe /done"))
        .unwrap();
    h.resume(j).unwrap();
    h.finish_all(j);
    let n = h.notifications().remove(0);
    h.svc.notification_returned(h.now, n.id, Hresult::E_FAIL);
    let run = h.new_effects();
    let Some(Effect::RunCommandLine {
        id,
        program,
        parameters,
        ..
    }) = run.first().cloned()
    else {
        panic!("{run:?}")
    };
    assert_eq!(
        (program.as_str(), parameters.as_str()),
        ("C:\\app.exe", "C:\\app.exe /done")
    );
    h.assert_trace(&format!("cmdline JobTransferred {j} #2 run \"C:\\\\app.exe\""));
    h.svc.command_line_exited(h.now, id, 0);
    h.assert_trace(&format!("cmdline {j} exited 0"));
    h.wait(Span::from_days(1));
    assert!(
        h.new_effects().is_empty(),
        "done: neither callback nor command line again"
    );
}

#[test]
fn cmdline_and_callback_both_fail_resend_after_min_retry_delay() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 1);
    h.cb(j, 1);
    h.svc.set_minimum_retry_delay(h.now, j, 120).unwrap();
    h.svc.set_notify_cmdline(h.now, j, Some("C:\\app.exe"), None).unwrap();
    h.resume(j).unwrap();
    h.fail_fatal(j);
    let n = h.notifications().remove(0);
    assert_eq!(n.kind, JobError);
    h.svc.notification_returned(h.now, n.id, Hresult::E_FAIL);
    let first = h.now;
    let run_id = |effects: Vec<Effect>| {
        effects.into_iter().find_map(|e| match e {
            Effect::RunCommandLine { id, .. } => Some(id),
            Effect::Notify(n) => panic!("callback called again: {n:?}"),
            _ => None,
        })
    };
    let id = run_id(h.new_effects()).expect("command line runs");
    h.svc.command_line_exited(h.now, id, 1);
    h.wait_secs(119);
    assert_eq!(run_id(h.new_effects()), None);
    h.wait_secs(1);
    let id2 = run_id(h.new_effects()).expect("re-sent after MinimumRetryDelay");
    assert_eq!(h.now.since(first), Span::from_secs(120));
    h.svc.command_line_exited(h.now, id2, 0);
    h.wait(Span::from_days(1));
    assert_eq!(run_id(h.new_effects()), None);
}

#[test]
fn cmdline_alone_runs_for_transferred_and_error_only() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 1);
    h.svc.set_notify_flags(h.now, j, 0x1B).unwrap(); // MODIFICATION and FILE ignored for it
    h.svc.set_notify_cmdline(h.now, j, Some("C:\\app.exe"), None).unwrap();
    h.resume(j).unwrap();
    h.connect(j);
    h.ev(j, TransferEvent::Progress { bytes: 1000 });
    assert!(h
        .new_effects()
        .iter()
        .all(|e| !matches!(e, Effect::RunCommandLine { .. })));
    h.ev(j, TransferEvent::FileDone);
    let runs = h
        .new_effects()
        .into_iter()
        .filter(|e| matches!(e, Effect::RunCommandLine { .. }))
        .count();
    assert_eq!(runs, 1);
}

#[test]
fn job_modification_is_not_retried() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 1);
    h.svc.set_notify_flags(h.now, j, 0x8).unwrap();
    h.cb(j, 1);
    h.svc.set_description(h.now, j, "changed").unwrap();
    let ns = h.notifications();
    assert_eq!(kinds(&ns), [(JobModification, j)]);
    h.svc.notification_returned(h.now, ns[0].id, Hresult::E_FAIL);
    h.wait(Span::from_days(1));
    assert!(h.notifications().is_empty(), "never retried");
    // The next change gives a new one.
    h.svc.set_description(h.now, j, "again").unwrap();
    assert_eq!(kinds(&h.notifications()), [(JobModification, j)]);
}

#[test]
fn file_transferred_serialised_and_before_job_transferred() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 3);
    h.svc.set_notify_flags(h.now, j, 0x11).unwrap();
    h.cb(j, 1);
    h.resume(j).unwrap();
    h.finish_all(j);
    assert_eq!(h.state(j), Transferred);
    let mut order = Vec::new();
    for answer in [
        Hresult::E_FAIL,
        Hresult::S_OK,
        Hresult::S_FALSE,
        Hresult::S_OK,
        Hresult::S_OK,
    ] {
        let ns = loop {
            let ns = h.notifications();
            if !ns.is_empty() {
                break ns;
            }
            let at = h.svc.poll_timeout().expect("something is owed");
            h.run_until(at);
        };
        assert_eq!(ns.len(), 1, "one at a time: {ns:?}");
        order.push((ns[0].kind, ns[0].file));
        h.svc.notification_returned(h.now, ns[0].id, answer);
    }
    assert_eq!(
        order,
        [
            (FileTransferred, Some(0)),
            (FileTransferred, Some(0)), // negative → called again
            (FileTransferred, Some(1)),
            (FileTransferred, Some(2)), // S_FALSE is success for FileTransferred (§4.3)
            (JobTransferred, None),
        ]
    );
}

#[test]
fn file_transferred_needs_callback2() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 2);
    h.svc.set_notify_flags(h.now, j, 0x11).unwrap();
    h.svc
        .set_notify_interface(
            h.now,
            j,
            Some(Callback {
                id: 1,
                callback2: false,
            }),
        )
        .unwrap();
    h.resume(j).unwrap();
    h.finish_all(j);
    assert_eq!(kinds(&h.notifications()), [(JobTransferred, j)]);
}

#[test]
fn disable_suppresses_everything() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 2);
    h.svc.set_notify_flags(h.now, j, 0x1F).unwrap();
    h.cb(j, 1);
    h.svc.set_notify_cmdline(h.now, j, Some("C:\\app.exe"), None).unwrap();
    h.resume(j).unwrap();
    h.finish_all(j);
    h.wait(Span::from_days(1));
    let e = h.new_effects();
    assert!(
        e.iter()
            .all(|e| !matches!(e, Effect::Notify(_) | Effect::RunCommandLine { .. })),
        "{e:?}"
    );
    // Clearing DISABLE delivers what is owed (at-least-once).
    h.svc.set_notify_flags(h.now, j, 0x1).unwrap();
    assert_eq!(kinds(&h.notifications()), [(JobTransferred, j)]);
}

#[test]
fn four_in_flight_per_user_fifth_waits_fifo_other_user_unaffected() {
    let mut h = H::bits();
    let alice = h.user;
    let bob = h.svc.add_user("bob");
    let mut jobs = Vec::new();
    for i in 0..6 {
        let j = h.job_with(JobType::Download, 1);
        h.svc.set_priority(h.now, j, 0).unwrap(); // foreground: all run at once
        h.cb(j, i);
        h.resume(j).unwrap();
        jobs.push(j);
    }
    for &j in &jobs {
        h.finish_all(j);
    }
    let first = h.notifications();
    assert_eq!(first.iter().map(|n| n.job).collect::<Vec<_>>(), jobs[..4]);
    assert_eq!(h.svc.notifications_in_flight(alice), 4);
    h.assert_trace(&format!(
        "notify JobTransferred {} waits for a slot user=alice",
        jobs[4]
    ));
    h.assert_trace(&format!(
        "notify JobTransferred {} waits for a slot user=alice",
        jobs[5]
    ));
    // Bob is not held up.
    let b = h.svc.create_job(h.now, bob, "bob's", JobType::Download).unwrap();
    h.add(b, 1);
    h.cb(b, 9);
    h.svc.set_priority(h.now, b, 0).unwrap();
    h.resume(b).unwrap();
    h.finish_all(b);
    assert_eq!(kinds(&h.notifications()), [(JobTransferred, b)]);
    assert_eq!(h.svc.notifications_in_flight(bob), 1);
    // Blocked callbacks stay blocked for days: still nothing for alice's 5th.
    h.wait(Span::from_days(3));
    assert!(h.notifications().is_empty());
    // One returns: the 5th (FIFO) goes out, then the 6th.
    h.svc.notification_returned(h.now, first[2].id, Hresult::S_OK);
    assert_eq!(kinds(&h.notifications()), [(JobTransferred, jobs[4])]);
    h.svc.notification_returned(h.now, first[0].id, Hresult::S_OK);
    assert_eq!(kinds(&h.notifications()), [(JobTransferred, jobs[5])]);
    assert_eq!(h.svc.notifications_in_flight(alice), 4);
}

// ----- environment ---------------------------------------------------------------

#[test]
fn network_lost_and_restored() {
    let mut h = H::bits();
    let a = h.job_in(Transferring, JobType::Download);
    let b = h.connecting(JobType::Download, 1); // QUEUED behind a
    let s = h.job_with(JobType::Download, 1); // SUSPENDED: untouched
    h.svc.handle_env(h.now, EnvEvent::NetworkLost);
    h.pump();
    for j in [a, b] {
        assert_eq!(h.state(j), TransientError);
        assert_eq!(h.svc.error(j).unwrap().hresult, Hresult::BG_E_NETWORK_DISCONNECTED);
    }
    assert_eq!(h.state(s), Suspended);
    // Resuming while the network is gone lands in TRANSIENT_ERROR too.
    h.resume(s).unwrap();
    assert_eq!(h.state(s), TransientError);
    h.svc.handle_env(h.now, EnvEvent::NetworkRestored);
    h.pump();
    assert_eq!(h.state(a), Connecting);
    assert_eq!(h.starts(a).last().unwrap().offset, 100, "from its byte offset");
    for j in [b, s] {
        assert_eq!(h.state(j), Queued);
    }
}

#[test]
fn logoff_requeues_and_nothing_runs_until_logon() {
    let mut h = H::bits();
    let bob = h.svc.add_user("bob");
    let a = h.job_in(Transferring, JobType::Download);
    let bj = h.svc.create_job(h.now, bob, "bob's", JobType::Download).unwrap();
    h.add(bj, 1);
    h.svc.set_priority(h.now, bj, 0).unwrap();
    h.svc.handle_env(h.now, EnvEvent::LogOff(h.user));
    h.pump();
    assert_eq!(h.state(a), Queued);
    let late = h.job_with(JobType::Download, 1);
    h.resume(late).unwrap();
    h.resume(bj).unwrap();
    assert_eq!(h.state(late), Queued, "waits for its owner");
    assert_eq!(h.state(bj), Connecting, "other users run");
    h.wait(Span::from_days(2));
    assert_eq!((h.state(a), h.state(late)), (Queued, Queued));
    h.svc.handle_env(h.now, EnvEvent::LogOn(h.user));
    h.pump();
    assert_eq!(h.state(a), Connecting);
    h.assert_trace("env logoff user=alice");
    h.assert_trace("env logon user=alice");
}

#[test]
fn service_restart_keeps_queue_drops_registrations_resumes_offsets() {
    let mut h = H::bits();
    let done = transferred_with_callback(&mut h, 1);
    let a = h.job_in(Transferring, JobType::Download);
    h.cb(a, 1);
    let owed = h.notifications();
    assert_eq!(kinds(&owed), [(JobTransferred, done)]);
    assert_eq!(h.svc.notifications_in_flight(h.user), 1);
    h.svc.handle_env(h.now, EnvEvent::ServiceRestart);
    h.pump();
    h.assert_trace("env service restart");
    h.assert_trace(&format!("job {a} TRANSFERRING -> QUEUED (service_restarted)"));
    assert_eq!(h.state(a), Connecting, "the queue survives");
    assert_eq!(h.starts(a).last().unwrap().offset, 100);
    assert_eq!(h.state(done), Transferred);
    assert_eq!(
        h.svc.notify_interface(done),
        Ok(None),
        "registrations are not persisted"
    );
    assert_eq!(h.svc.notifications_in_flight(h.user), 0);
    // The pre-restart delivery's return is ignored; re-registering delivers again.
    h.svc.notification_returned(h.now, owed[0].id, Hresult::S_OK);
    h.wait_secs(600);
    assert!(h.notifications().is_empty());
    h.cb(done, 2);
    let again = h.notifications();
    assert_eq!(kinds(&again), [(JobTransferred, done)]);
    assert_eq!(again[0].callback.id, 2);
}

#[test]
fn service_restart_sends_owed_notification_to_the_command_line() {
    // Regression (found by model_based): after a restart the owed JobTransferred waited for
    // an unrelated event, and a command line running at the restart was orphaned.
    for cmdline_running in [false, true] {
        let mut h = H::bits();
        let j = h.job_with(JobType::Download, 1);
        h.cb(j, 1);
        h.svc.set_notify_cmdline(h.now, j, Some("C:\\app.exe"), None).unwrap();
        h.resume(j).unwrap();
        h.finish_all(j);
        let n = h.notifications().remove(0);
        if cmdline_running {
            h.svc.notification_returned(h.now, n.id, Hresult::E_FAIL);
            assert_eq!(
                h.svc.owed_final_notification(j),
                Some((JobTransferred, DeliveryPhase::CmdLine))
            );
        }
        h.new_effects();
        h.svc.handle_env(h.now, EnvEvent::ServiceRestart);
        let runs = h
            .new_effects()
            .into_iter()
            .filter(|e| matches!(e, Effect::RunCommandLine { job, .. } if *job == j))
            .count();
        assert_eq!(runs, 1, "cmdline running at restart: {cmdline_running}");
        assert_eq!(h.svc.notifications_in_flight(h.user), 0);
    }
}

#[test]
fn service_restart_notifies_no_dropped_registration() {
    // Regression (found by model_based): the restart re-queued active jobs (sending
    // JobModification) before dropping registrations, so deliveries went out uncounted.
    let mut h = H::bits();
    let j = h.job_in(Transferring, JobType::Download);
    h.svc.set_notify_flags(h.now, j, 0xB).unwrap();
    h.cb(j, 1);
    for n in h.notifications() {
        h.svc.notification_returned(h.now, n.id, Hresult::S_OK);
    }
    h.svc.handle_env(h.now, EnvEvent::ServiceRestart);
    assert!(h.notifications().is_empty());
    assert_eq!(h.svc.notifications_in_flight(h.user), 0);
}

#[test]
fn removing_the_command_line_after_a_fallback_hands_the_event_back_to_the_callback() {
    use bitsim_model::*;
    let mut svc = Service::new(Flavor::Bits, 3);
    let u = svc.add_user("alice");
    let t0 = Time::ZERO;
    let j = svc.create_job(t0, u, "x", JobType::Download).unwrap();
    svc.add_file(t0, j, "http://h/f", "C:\\f").unwrap();
    svc.set_notify_interface(
        t0,
        j,
        Some(Callback {
            id: 1,
            callback2: false,
        }),
    )
    .unwrap();
    svc.set_notify_cmdline(t0, j, Some("C:\\app.exe"), None).unwrap();
    svc.resume(t0, j).unwrap();
    let mut transfer = None;
    while let Some(e) = svc.poll_effect() {
        if let Effect::StartTransfer(s) = e {
            transfer = Some(s.transfer);
        }
    }
    let failure = TransferFailure::Http {
        status: 404,
        phase: RequestPhase::Download,
    };
    svc.handle_transfer(t0, transfer.unwrap(), TransferEvent::Failed(failure));
    // JobError to the callback, which fails: the command line takes over and fails too.
    let mut cmd = None;
    while let Some(e) = svc.poll_effect() {
        match e {
            Effect::Notify(n) => svc.notification_returned(t0, n.id, Hresult::E_FAIL),
            Effect::RunCommandLine { id, .. } => cmd = Some(id),
            _ => {}
        }
    }
    svc.command_line_exited(t0, cmd.expect("the command line ran"), 1);
    svc.set_notify_cmdline(t0, j, None, None).unwrap();
    // After MinimumRetryDelay the event goes back to the callback.
    let at = svc.poll_timeout().unwrap();
    svc.handle_timeout(at);
    let again = std::iter::from_fn(|| svc.poll_effect())
        .any(|e| matches!(e, Effect::Notify(n) if n.kind == NotificationKind::JobError));
    assert!(again, "{}", render(svc.trace()));
}

#[test]
fn take_ownership_moves_the_job_drops_the_command_line_and_keeps_callbacks_with_their_registrant() {
    use bitsim_model::*;
    let mut svc = Service::new(Flavor::Bits, 3);
    let (alice, bob) = (svc.add_user("alice"), svc.add_user("bob"));
    let t0 = Time::ZERO;
    let j = svc.create_job(t0, alice, "x", JobType::Download).unwrap();
    svc.add_file(t0, j, "http://h/f", "C:\\f").unwrap();
    svc.set_notify_interface(
        t0,
        j,
        Some(Callback {
            id: 1,
            callback2: false,
        }),
    )
    .unwrap();
    svc.set_notify_cmdline(t0, j, Some("C:\\app.exe"), None).unwrap();
    svc.take_ownership(t0, j, bob).unwrap();
    assert_eq!(svc.owner(j), Ok(bob));
    assert_eq!(svc.enum_jobs(alice), vec![]);
    assert_eq!(svc.enum_jobs(bob), vec![j]);
    assert_eq!(svc.notify_cmdline(j), Ok(None), "ref: bits-spec §4.4");
    // The callback still runs as alice: her slot, not bob's (ref: bits-spec §4.2).
    svc.set_notify_flags(t0, j, 0x8).unwrap(); // JobModification, delivered on the next change
    svc.set_description(t0, j, "d").unwrap();
    assert_eq!(svc.notifications_in_flight(alice), 1);
    assert_eq!(svc.notifications_in_flight(bob), 0);
    svc.cancel(t0, j).unwrap();
    assert_eq!(svc.take_ownership(t0, j, alice), Err(Hresult::BG_E_INVALID_STATE));
}
