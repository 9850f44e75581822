//! One test per row of the transition table, bits-spec §1.3, driven through the public
//! API and transfer events only. Each asserts the state, the HRESULTs and the trace.
//!
//! Rows the model cannot express have no test: "MaxInternetBandwidth policy = 0"
//! (no policy input), "Complete, some rename fails" (renames are an effect with no
//! failure input) and the two `SetValidationState(FALSE)` rows (no validation API).

mod common;

use bitsim_model::*;
use common::*;
use JobState::*;

#[test]
fn create_job_goes_suspended() {
    let mut h = H::bits();
    for ty in JobType::ALL {
        let j = h.create(*ty);
        assert_eq!(h.state(j), Suspended);
        assert_eq!(h.svc.job_type(j), Ok(*ty));
        h.assert_trace(&format!(
            "job {j} created type={ty} user=alice name=\"test job\" -> SUSPENDED"
        ));
    }
    assert!(h.new_effects().is_empty(), "creating a job starts nothing");
}

#[test]
fn suspended_resume_with_files_goes_queued() {
    let mut h = H::bits();
    // A running background job holds the one background slot, so the resumed job stays QUEUED.
    let _blocker = h.connecting(JobType::Download, 1);
    let j = h.job_with(JobType::Download, 1);
    assert_eq!(h.resume(j), Ok(()));
    assert_eq!(h.state(j), Queued);
    assert_eq!(h.transitions(j), ["SUSPENDED -> QUEUED (resume)"]);
    h.assert_trace(&format!("call {j} Resume -> 0x00000000 (S_OK)"));
}

#[test]
fn suspended_resume_with_no_files_stays_suspended_empty() {
    let mut h = H::bits();
    let j = h.create(JobType::Download);
    assert_eq!(h.resume(j), Err(Hresult::BG_E_EMPTY));
    assert_eq!(h.state(j), Suspended);
    assert!(h.transitions(j).is_empty());
    h.assert_trace(&format!("call {j} Resume -> 0x80200003 (BG_E_EMPTY)"));
}

#[test]
fn queued_scheduler_turn_goes_connecting() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 1);
    h.resume(j).unwrap();
    assert_eq!(h.state(j), Connecting);
    assert_eq!(
        h.transitions(j),
        ["SUSPENDED -> QUEUED (resume)", "QUEUED -> CONNECTING (scheduled)"]
    );
    let starts = h.starts(j);
    assert_eq!(starts.len(), 1);
    assert_eq!((starts[0].what, starts[0].offset), (TransferWhat::File(0), 0));
    h.assert_trace(&format!("transfer {j} start file 0 at 0"));
}

#[test]
fn connecting_connection_made_goes_transferring() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.ev(
        j,
        TransferEvent::Connected {
            bytes_total: Some(5000),
        },
    );
    assert_eq!(h.state(j), Transferring);
    assert_eq!(h.svc.progress(j).unwrap().bytes_total, 5000);
    h.assert_trace(&format!("transfer {j} connected file 0 size=5000"));
    h.assert_trace(&format!("job {j} CONNECTING -> TRANSFERRING (connected)"));
}

#[test]
fn connecting_connection_fails_goes_transient_error() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.ev(
        j,
        TransferEvent::Failed(TransferFailure::Network(NetworkFailure::ConnectionRefused)),
    );
    assert_eq!(h.state(j), TransientError);
    let e = h.svc.error(j).unwrap();
    assert_eq!(e.context, ErrorContext::GeneralTransport);
    assert_eq!(h.svc.error_count(j), Ok(1));
    h.assert_trace(&format!("job {j} CONNECTING -> TRANSIENT_ERROR (transient_error)"));
}

#[test]
fn transferring_time_slice_ends_goes_queued() {
    let mut h = H::bits();
    let a = h.transferring(JobType::Download, 1);
    let b = h.connecting(JobType::Download, 1);
    assert_eq!(h.state(b), Queued, "one background job at a time");
    // ref: bits-spec §5.2: same-priority round robin; the BITS profile's slice is 300 s.
    h.wait_secs(299);
    assert_eq!(h.state(a), Transferring);
    h.wait_secs(1);
    assert_eq!(h.state(a), Queued);
    assert_eq!(h.state(b), Connecting);
    h.assert_trace(&format!("job {a} TRANSFERRING -> QUEUED (slice_ended)"));
    h.assert_trace(&format!("transfer {a} abort"));
    // The next slice goes back to `a`, which resumes from its byte offset.
    h.connect(b);
    h.wait_secs(300);
    assert_eq!((h.state(a), h.state(b)), (Connecting, Queued));
    assert_eq!(h.starts(a).last().unwrap().offset, 100);
}

#[test]
fn transferring_last_file_finished_download_goes_transferred() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 2);
    h.finish_file(j);
    assert_eq!(h.state(j), Transferring, "one file left");
    assert_eq!(h.starts(j).last().unwrap().what, TransferWhat::File(1));
    h.finish_file(j);
    assert_eq!(h.state(j), Transferred);
    let p = h.svc.progress(j).unwrap();
    assert_eq!((p.files_total, p.files_transferred, p.bytes_transferred), (2, 2, 2000));
    assert_eq!(h.svc.times(j).unwrap().transfer_completion, Some(h.now));
    h.assert_trace(&format!("job {j} TRANSFERRING -> TRANSFERRED (all_files_done)"));
}

#[test]
fn transferring_last_upload_fragment_received_goes_transferred() {
    let mut h = H::bits();
    let j = h.transferring(JobType::Upload, 1);
    h.ev(j, TransferEvent::Progress { bytes: 900 });
    h.ev(j, TransferEvent::FileDone);
    assert_eq!(h.state(j), Transferred);
    assert!(
        h.svc.file_progress(j, 0).unwrap().completed,
        "upload Completed = uploaded"
    );
    h.assert_trace(&format!("transfer {j} done file 0 bytes=1000"));
    h.assert_trace(&format!("job {j} TRANSFERRING -> TRANSFERRED (all_files_done)"));
}

#[test]
fn transferring_upload_reply_sent_and_reply_downloaded_goes_transferred() {
    let mut h = H::bits();
    let j = h.connecting(JobType::UploadReply, 1);
    h.finish_file(j);
    assert_eq!(h.state(j), Transferring, "upload done, reply still to come");
    assert_eq!(h.starts(j).last().unwrap().what, TransferWhat::Reply);
    // ref: bits-spec §2.2: BG_SIZE_UNKNOWN would mean "the upload failed"; the reply has
    // started, its size is not known yet
    assert_eq!(h.svc.reply_progress(j).unwrap().bytes_total, 0);
    h.ev(j, TransferEvent::Connected { bytes_total: Some(10) });
    h.ev(j, TransferEvent::Progress { bytes: 10 });
    h.ev(j, TransferEvent::FileDone);
    assert_eq!(h.state(j), Transferred);
    assert_eq!(h.svc.reply_progress(j).unwrap().bytes_transferred, 10);
    h.assert_trace(&format!("transfer {j} done reply bytes=10"));
}

#[test]
fn upload_reply_reply_progress_tells_upload_failure_from_reply_failure() {
    // ref: bits-spec §2.2: BytesTotal == BG_SIZE_UNKNOWN means the upload failed
    let mut h = H::bits();
    let up = h.connecting(JobType::UploadReply, 1);
    h.fail_http(up, 404);
    assert_eq!(h.svc.reply_progress(up).unwrap().bytes_total, BG_SIZE_UNKNOWN);
    let mut h = H::bits();
    let reply = h.connecting(JobType::UploadReply, 1);
    h.finish_file(reply);
    h.fail_http(reply, 404);
    assert_eq!(h.state(reply), Error);
    assert_ne!(h.svc.reply_progress(reply).unwrap().bytes_total, BG_SIZE_UNKNOWN);
}

#[test]
fn connecting_or_transferring_transient_error_goes_transient_error() {
    for from in [Connecting, Transferring] {
        let mut h = H::bits();
        let j = h.job_in(from, JobType::Download);
        h.fail_http(j, 503);
        assert_eq!(h.state(j), TransientError, "from {from}");
        let e = h.svc.error(j).unwrap();
        assert_eq!((e.hresult, e.context), (Hresult::http(503), ErrorContext::RemoteFile));
        assert_eq!(h.svc.error_count(j), Ok(1), "ref: bits-spec §3.4: +1");
        h.assert_trace(&format!(
            "job {j} error 0x801901F7 (BG_E_HTTP_ERROR_503) context=REMOTE_FILE transient file=0 errors=1"
        ));
        h.assert_trace(&format!("job {j} {from} -> TRANSIENT_ERROR (transient_error)"));
        // The failed transfer is already over: nothing to abort.
        assert!(!h.trace().contains(&format!("transfer {j} abort")), "from {from}");
    }
}

#[test]
fn connecting_or_transferring_fatal_error_goes_error() {
    for from in [Connecting, Transferring] {
        let mut h = H::bits();
        let j = h.connecting(JobType::Download, 3);
        if from == Transferring {
            h.connect(j);
        }
        h.fail_http(j, 404);
        assert_eq!(h.state(j), Error, "from {from}");
        assert_eq!(h.svc.error(j).unwrap().hresult, Hresult::http(404));
        assert_eq!(h.svc.error_count(j), Ok(1));
        h.assert_trace(&format!("job {j} {from} -> ERROR (fatal_error)"));
        // "no more files in the job are processed"
        h.wait(Span::from_days(1));
        assert_eq!(h.starts(j).len(), 1);
        assert_eq!(h.state(j), Error);
    }
}

#[test]
fn queued_or_transferring_network_lost_goes_transient_error_network_disconnected() {
    for from in [Queued, Connecting, Transferring] {
        let mut h = H::bits();
        let j = h.job_in(from, JobType::Download);
        let count = h.svc.error_count(j).unwrap();
        h.svc.handle_env(h.now, EnvEvent::NetworkLost);
        h.pump();
        assert_eq!(h.state(j), TransientError, "from {from}");
        let e = h.svc.error(j).unwrap();
        assert_eq!(e.hresult, Hresult::BG_E_NETWORK_DISCONNECTED);
        assert_eq!(h.svc.error_count(j), Ok(count), "ref: bits-spec §3.4: not counted");
        h.assert_trace("env network lost");
        h.assert_trace(&format!("job {j} {from} -> TRANSIENT_ERROR (network_lost)"));
        // No timed retry while the network is gone (ref: bits-spec §2.5 rule 2).
        h.wait_secs(3600);
        assert_eq!(h.state(j), TransientError);
    }
}

#[test]
fn transient_error_network_restored_goes_queued() {
    let mut h = H::bits();
    let http = h.connecting(JobType::Download, 1);
    h.fail_transient(http); // an HTTP transient error, not a network one
    let net = h.job_in(Transferring, JobType::Download);
    h.svc.handle_env(h.now, EnvEvent::NetworkLost);
    h.svc.handle_env(h.now, EnvEvent::NetworkRestored);
    h.pump();
    // ref: bits-spec §1.3 [UNC]: every TRANSIENT_ERROR job, whatever its error code.
    for j in [http, net] {
        h.assert_trace(&format!("job {j} TRANSIENT_ERROR -> QUEUED (network_restored)"));
        assert_ne!(h.state(j), TransientError);
    }
    h.assert_trace("env network restored");
}

#[test]
fn transferring_owner_logs_off_goes_queued() {
    let mut h = H::bits();
    let j = h.transferring(JobType::Download, 1);
    h.svc.handle_env(h.now, EnvEvent::LogOff(h.user));
    h.pump();
    assert_eq!(h.state(j), Queued);
    h.assert_trace(&format!("job {j} TRANSFERRING -> QUEUED (owner_logged_off)"));
    h.wait(Span::from_days(1));
    assert_eq!(h.state(j), Queued, "nothing runs while the owner is logged off");
    h.svc.handle_env(h.now, EnvEvent::LogOn(h.user));
    h.pump();
    assert_eq!(h.state(j), Connecting);
    assert_eq!(h.starts(j).last().unwrap().offset, 100, "resumes from its byte offset");
}

#[test]
fn transient_error_min_retry_delay_elapses_goes_queued() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.fail_transient(j);
    h.wait_secs(599);
    assert_eq!(h.state(j), TransientError);
    h.wait_secs(1);
    h.assert_trace(&format!("job {j} TRANSIENT_ERROR -> QUEUED (retry_delay_elapsed)"));
    assert_eq!(h.state(j), Connecting, "retried");
    assert_eq!(h.starts(j).len(), 2);
}

#[test]
fn transient_error_no_progress_for_no_progress_timeout_goes_error() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.svc.set_no_progress_timeout(h.now, j, 3600).unwrap();
    h.svc.set_minimum_retry_delay(h.now, j, 600).unwrap();
    h.fail_transient(j);
    // Every retry fails again: no progress for an hour → ERROR.
    while h.state(j) != Error {
        let at = h.svc.poll_timeout().expect("a timer");
        h.run_until(at);
        if h.state(j) == Connecting {
            h.fail_transient(j);
        }
    }
    assert_eq!(h.now, Time::from_secs(3600));
    // The error code after the timeout keeps the last transient error (UNVERIFIED, §11 q2).
    assert_eq!(h.svc.error(j).unwrap().hresult, Hresult::http(503));
    let t = h.trace();
    assert!(
        t.contains(&format!("job {j} TRANSIENT_ERROR -> ERROR (no_progress_timeout)"))
            || t.contains(&format!("job {j} CONNECTING -> ERROR (fatal_error)")),
        "{t}"
    );
}

#[test]
fn any_transient_error_with_no_progress_timeout_zero_goes_error() {
    for from in [Connecting, Transferring] {
        let mut h = H::bits();
        let j = h.job_in(from, JobType::Download);
        h.svc.set_no_progress_timeout(h.now, j, 0).unwrap();
        h.fail_transient(j);
        assert_eq!(h.state(j), Error, "from {from}: all errors fatal");
        assert_eq!(h.svc.error(j).unwrap().hresult, Hresult::http(503));
        h.assert_trace(&format!("job {j} {from} -> ERROR (fatal_error)"));
        h.assert_no_trace("TRANSIENT_ERROR");
    }
}

#[test]
fn any_transient_error_with_retry_delay_above_no_progress_timeout_goes_error() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.svc.set_no_progress_timeout(h.now, j, 60).unwrap();
    h.svc.set_minimum_retry_delay(h.now, j, 61).unwrap();
    h.fail_transient(j);
    assert_eq!(h.state(j), Error, "no retry at all");
    h.assert_trace(&format!("job {j} CONNECTING -> ERROR (fatal_error)"));
}

#[test]
fn connecting_or_transferring_over_max_download_time_goes_error_maxdownload_timeout() {
    for from in [Connecting, Transferring] {
        let mut h = H::bits();
        let j = h.job_in(from, JobType::Download);
        h.svc.set_maximum_download_time(h.now, j, 100).unwrap();
        h.wait_secs(99);
        assert_eq!(h.state(j), from);
        h.wait_secs(1);
        assert_eq!(h.state(j), Error, "from {from}");
        let e = h.svc.error(j).unwrap();
        assert_eq!(e.hresult, Hresult::BG_E_MAXDOWNLOAD_TIMEOUT);
        h.assert_trace(&format!("job {j} {from} -> ERROR (max_download_time)"));
    }
}

#[test]
fn transient_error_resume_retries_now_goes_queued() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.fail_transient(j);
    h.wait_secs(10);
    assert_eq!(h.resume(j), Ok(()));
    h.assert_trace(&format!("job {j} TRANSIENT_ERROR -> QUEUED (resume)"));
    assert_eq!(h.state(j), Connecting, "retried at once, ignoring the 600 s delay");
    assert_eq!(h.starts(j).len(), 2);
}

#[test]
fn error_resume_goes_queued() {
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 1);
    h.fail_fatal(j);
    assert_eq!(h.resume(j), Ok(()));
    h.assert_trace(&format!("job {j} ERROR -> QUEUED (resume)"));
    assert_eq!(h.state(j), Connecting);
    // GetError is gone once the job leaves ERROR.
    assert_eq!(h.svc.error(j), Err(Hresult::BG_E_ERROR_INFORMATION_UNAVAILABLE));
}

#[test]
fn queued_connecting_transferring_resume_unchanged() {
    for from in [Queued, Connecting, Transferring] {
        let mut h = H::bits();
        let j = h.job_in(from, JobType::Download);
        let before = h.transitions(j).len();
        let starts = h.starts(j).len();
        assert_eq!(h.resume(j), Ok(()), "{from}");
        assert_eq!(h.state(j), from);
        assert_eq!(h.transitions(j).len(), before, "no state change in {from}");
        assert_eq!(h.starts(j).len(), starts, "no new transfer in {from}");
    }
}

#[test]
fn any_non_final_suspend_goes_suspended() {
    for from in NON_FINAL {
        let mut h = H::bits();
        let j = h.job_in(from, JobType::Download);
        let live = h.active.contains_key(&j);
        let aborts = |h: &H| h.trace().matches(&format!("transfer {j} abort")).count();
        let aborts_before = aborts(&h);
        assert_eq!(h.suspend(j), Ok(()), "{from}");
        assert_eq!(h.state(j), Suspended, "from {from}");
        if from == Suspended {
            assert!(!h.trace().contains("-> SUSPENDED (suspend)"), "already SUSPENDED stays");
        } else {
            h.assert_trace(&format!("job {j} {from} -> SUSPENDED (suspend)"));
        }
        assert_eq!(
            aborts(&h) - aborts_before,
            usize::from(live),
            "{from}: the live transfer is aborted"
        );
        h.wait(Span::from_days(1));
        assert_eq!(h.state(j), Suspended, "leaves only via Resume, Complete or Cancel");
    }
}

#[test]
fn any_non_final_cancel_goes_cancelled() {
    for from in NON_FINAL {
        let mut h = H::bits();
        let j = h.job_in(from, JobType::Download);
        assert_eq!(h.cancel(j), Ok(Hresult::S_OK), "{from}");
        assert_eq!(h.state(j), Cancelled);
        h.assert_trace(&format!("job {j} {from} -> CANCELLED (cancel)"));
        // Partial and complete temporary files are deleted.
        h.assert_trace(&format!("files {j} deleted [0]"));
        assert!(h
            .log
            .iter()
            .any(|e| matches!(e, Effect::DeleteTempFiles { job, files } if *job == j && files == &[0])));
        assert!(!h.svc.enum_jobs(h.user).contains(&j), "final jobs leave enumeration");
    }
}

#[test]
fn any_non_final_download_complete_goes_acknowledged() {
    for from in NON_FINAL {
        let mut h = H::bits();
        let j = h.job_in(from, JobType::Download);
        let done = from == Transferred;
        let want = if done {
            Hresult::S_OK
        } else {
            Hresult::BG_S_PARTIAL_COMPLETE
        };
        assert_eq!(h.complete(j), Ok(want), "{from}");
        assert_eq!(h.state(j), Acknowledged);
        h.assert_trace(&format!("job {j} {from} -> ACKNOWLEDGED (complete)"));
        let renames = h.log.iter().find_map(|e| match e {
            Effect::RenameFiles { job, files, .. } if *job == j => Some(files.clone()),
            _ => None,
        });
        if done {
            assert_eq!(renames.unwrap(), vec![(0, "C:\\d\\f0.bin".to_string())]);
            h.assert_trace(&format!("files {j} renamed [0]"));
            assert!(h.svc.file_progress(j, 0).unwrap().completed);
        } else {
            assert_eq!(renames.unwrap(), vec![], "{from}: nothing finished to rename");
            h.assert_trace(&format!("files {j} deleted [0]"));
        }
    }
}

#[test]
fn download_complete_mid_transfer_keeps_finished_files() {
    // ref: bits-spec §1.5: Complete while the 3rd of 5 files transfers keeps files 1–2.
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 5);
    h.finish_file(j);
    h.finish_file(j);
    h.connect(j);
    assert_eq!(h.complete(j), Ok(Hresult::BG_S_PARTIAL_COMPLETE));
    h.assert_trace(&format!("files {j} renamed [0,1]"));
    h.assert_trace(&format!("files {j} deleted [2,3,4]"));
    h.assert_trace(&format!("call {j} Complete -> 0x00200017 (BG_S_PARTIAL_COMPLETE)"));
}

#[test]
fn transferred_upload_complete_goes_acknowledged() {
    for ty in [JobType::Upload, JobType::UploadReply] {
        let mut h = H::bits();
        let j = h.job_in(Transferred, ty);
        h.svc.set_reply_file_name(h.now, j, None).ok();
        assert_eq!(h.complete(j), Ok(Hresult::S_OK), "{ty}");
        assert_eq!(h.state(j), Acknowledged);
        h.assert_trace(&format!("job {j} TRANSFERRED -> ACKNOWLEDGED (complete)"));
        let reply_renamed = h
            .log
            .iter()
            .any(|e| matches!(e, Effect::RenameFiles { job, reply: Some(_), .. } if *job == j));
        assert_eq!(reply_renamed, ty == JobType::UploadReply, "{ty}");
    }
}

#[test]
fn a_reply_file_bits_names_lands_next_to_the_upload_file() {
    // ref: IBackgroundCopyJob2::SetReplyFileName, Remarks: a generated reply file
    // "is written to the same directory as the local upload file".
    let mut h = H::bits();
    let j = h.job_in(Transferred, JobType::UploadReply);
    assert_eq!(h.complete(j), Ok(Hresult::S_OK));
    let reply = h.log.iter().find_map(|e| match e {
        Effect::RenameFiles { job, reply, .. } if *job == j => reply.clone(),
        _ => None,
    });
    assert_eq!(reply.as_deref(), Some(format!("C:\\d\\reply-{j}.bin").as_str()));
}

#[test]
fn any_non_final_inactivity_timeout_goes_cancelled() {
    let ninety = Span::from_days(90);
    for from in NON_FINAL {
        let mut h = H::bits();
        let j = match from {
            // Owner logged off: the job sits in QUEUED.
            Queued => {
                let j = h.job_with(JobType::Download, 1);
                h.svc.handle_env(h.now, EnvEvent::LogOff(h.user));
                h.resume(j).unwrap();
                j
            }
            // Network gone and no NoProgressTimeout to end it first.
            TransientError => {
                let j = h.transferring(JobType::Download, 1);
                h.svc.set_no_progress_timeout(h.now, j, u32::MAX).unwrap();
                h.svc.handle_env(h.now, EnvEvent::NetworkLost);
                j
            }
            _ => h.job_in(from, JobType::Download),
        };
        h.svc.set_maximum_download_time(h.now, j, u32::MAX).unwrap();
        h.pump();
        assert_eq!(h.state(j), from);
        let start = h.now;
        h.run_until(start.plus(Span(ninety.0 - 1000)));
        assert_eq!(h.state(j), from, "{from}: not yet");
        h.run_until(start.plus(ninety));
        assert_eq!(h.state(j), Cancelled, "{from}");
        h.assert_trace(&format!("job {j} {from} -> CANCELLED (inactivity_timeout)"));
        h.assert_trace(&format!("files {j} deleted [0]"));
    }
}

#[test]
fn transferred_or_error_add_file_then_resume_transfers_the_new_file() {
    // Documented as allowed; the resulting sequence is UNVERIFIED (§11 q4): the model
    // goes QUEUED and transfers only the new file.
    for from in [Transferred, Error] {
        let mut h = H::bits();
        let j = h.job_in(from, JobType::Download);
        assert_eq!(
            h.svc.add_file(h.now, j, "http://127.0.0.1/late.bin", "C:\\d\\late.bin"),
            Ok(())
        );
        assert_eq!(h.state(j), from, "AddFile alone changes no state");
        assert_eq!(h.resume(j), Ok(()));
        h.assert_trace(&format!("job {j} {from} -> QUEUED (resume)"));
        assert_eq!(h.state(j), Connecting);
        let next = h.starts(j).last().unwrap().what;
        let want = if from == Transferred { 1 } else { 0 };
        assert_eq!(next, TransferWhat::File(want), "{from}");
        h.finish_all(j);
        assert_eq!(h.state(j), Transferred);
    }
}
