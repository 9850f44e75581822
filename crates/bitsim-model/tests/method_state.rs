//! One test per row of the method × state table, bits-spec §1.4 (every method in every
//! state), the limits of §9, the argument checks of §4.1 / §5.1 / §6.3, and the
//! Delivery Optimization differences of §8.1.

mod common;

use bitsim_model::*;
use common::*;
use JobState::*;

const ALL_STATES: [JobState; 9] = [
    Queued,
    Connecting,
    Transferring,
    Suspended,
    Error,
    TransientError,
    Transferred,
    Acknowledged,
    Cancelled,
];

/// Runs `call` on a fresh job in every state; non-final states must give `Ok`, final
/// states `BG_E_INVALID_STATE`.
#[track_caller]
fn non_final_only<T: std::fmt::Debug>(ty: JobType, call: impl Fn(&mut H, JobId) -> ApiResult<T>) {
    for state in ALL_STATES {
        let mut h = H::bits();
        let j = h.job_in(state, ty);
        let r = call(&mut h, j);
        if state.is_final() {
            assert_eq!(r.err(), Some(Hresult::BG_E_INVALID_STATE), "{ty} in {state}");
            assert_eq!(h.state(j), state, "a final state is never left");
        } else {
            assert!(r.is_ok(), "{ty} in {state}: {r:?}");
        }
    }
}

// ----- state-changing methods ------------------------------------------------------

#[test]
fn resume_allowed_in_non_final_invalid_state_in_final_empty_without_files() {
    non_final_only(JobType::Download, |h, j| h.resume(j));
    let mut h = H::bits();
    let j = h.create(JobType::Download);
    assert_eq!(h.resume(j), Err(Hresult::BG_E_EMPTY));
}

#[test]
fn suspend_allowed_in_non_final_invalid_state_in_final() {
    non_final_only(JobType::Download, |h, j| h.suspend(j));
}

#[test]
fn cancel_allowed_in_non_final_invalid_state_in_final() {
    non_final_only(JobType::Download, |h, j| h.cancel(j));
    // [TEST test_Cancel]: GetState on the held job is S_OK/CANCELLED, a 2nd Cancel fails.
    let mut h = H::bits();
    let j = h.job_with(JobType::Upload, 1);
    assert_eq!(h.cancel(j), Ok(Hresult::S_OK));
    assert_eq!(h.svc.state(j), Ok(Cancelled));
    assert_eq!(h.cancel(j), Err(Hresult::BG_E_INVALID_STATE));
    h.assert_trace(&format!("call {j} Cancel -> 0x80200002 (BG_E_INVALID_STATE)"));
}

#[test]
fn complete_download_allowed_in_non_final_partial_complete_invalid_state_in_final() {
    non_final_only(JobType::Download, |h, j| h.complete(j));
    let mut h = H::bits();
    let j = h.connecting(JobType::Download, 2);
    h.finish_file(j);
    assert_eq!(h.complete(j), Ok(Hresult::BG_S_PARTIAL_COMPLETE));
    // [TEST test_HttpOptions]: a 2nd Complete and SetNotifyInterface(NULL) fail.
    assert_eq!(h.complete(j), Err(Hresult::BG_E_INVALID_STATE));
    assert_eq!(
        h.svc.set_notify_interface(h.now, j, None),
        Err(Hresult::BG_E_INVALID_STATE)
    );
    // An empty SUSPENDED download job completes with S_OK (UNVERIFIED, §11 q6).
    let e = h.create(JobType::Download);
    assert_eq!(h.complete(e), Ok(Hresult::S_OK));
}

#[test]
fn complete_upload_allowed_only_in_transferred() {
    for ty in [JobType::Upload, JobType::UploadReply] {
        for state in ALL_STATES {
            let mut h = H::bits();
            let j = h.job_in(state, ty);
            let r = h.complete(j);
            if state == Transferred {
                assert_eq!(r, Ok(Hresult::S_OK), "{ty}");
                assert_eq!(h.state(j), Acknowledged);
            } else {
                assert_eq!(r, Err(Hresult::BG_E_INVALID_STATE), "{ty} in {state}");
                assert_eq!(h.state(j), state);
            }
        }
    }
}

// ----- setters: non-final only ---------------------------------------------------------

#[test]
fn set_display_name_allowed_in_non_final() {
    non_final_only(JobType::Download, |h, j| h.svc.set_display_name(h.now, j, "renamed"));
    let mut h = H::bits();
    let j = h.create(JobType::Download);
    h.svc.set_display_name(h.now, j, "renamed").unwrap();
    assert_eq!(h.svc.display_name(j).unwrap(), "renamed");
}

#[test]
fn set_description_allowed_in_non_final() {
    non_final_only(JobType::Download, |h, j| h.svc.set_description(h.now, j, "text"));
}

#[test]
fn set_priority_allowed_in_non_final() {
    non_final_only(JobType::Download, |h, j| h.svc.set_priority(h.now, j, 0));
}

#[test]
fn set_notify_flags_allowed_in_non_final() {
    non_final_only(JobType::Download, |h, j| h.svc.set_notify_flags(h.now, j, 0x1F));
}

#[test]
fn set_notify_interface_allowed_in_non_final() {
    non_final_only(JobType::Download, |h, j| {
        h.svc.set_notify_interface(
            h.now,
            j,
            Some(Callback {
                id: 9,
                callback2: false,
            }),
        )
    });
    non_final_only(JobType::Download, |h, j| h.svc.set_notify_interface(h.now, j, None));
}

#[test]
fn set_notify_cmdline_allowed_in_non_final() {
    non_final_only(JobType::Download, |h, j| {
        h.svc
            .set_notify_cmdline(h.now, j, Some("C:\\app.exe"), Some("C:\\app.exe /done"))
    });
}

#[test]
fn set_minimum_retry_delay_allowed_in_non_final() {
    non_final_only(JobType::Download, |h, j| h.svc.set_minimum_retry_delay(h.now, j, 60));
}

#[test]
fn set_no_progress_timeout_allowed_in_non_final() {
    non_final_only(JobType::Download, |h, j| h.svc.set_no_progress_timeout(h.now, j, 7200));
}

#[test]
fn set_maximum_download_time_allowed_in_non_final() {
    non_final_only(JobType::Download, |h, j| {
        h.svc.set_maximum_download_time(h.now, j, 7200)
    });
}

// ----- AddFile / AddFileSet ------------------------------------------------------------

#[test]
fn add_file_allowed_before_complete_or_cancel() {
    // The code in final states is UNVERIFIED (§11 q4); the model says BG_E_INVALID_STATE.
    non_final_only(JobType::Download, |h, j| {
        h.svc.add_file(h.now, j, "http://127.0.0.1/more.bin", "C:\\d\\more.bin")
    });
    non_final_only(JobType::Download, |h, j| {
        h.svc.add_file_set(
            h.now,
            j,
            &[("http://127.0.0.1/a", "C:\\d\\a"), ("http://127.0.0.1/b", "C:\\d\\b")],
        )
    });
}

#[test]
fn add_file_second_file_of_upload_job_too_many_files() {
    for ty in [JobType::Upload, JobType::UploadReply] {
        let mut h = H::bits();
        let j = h.job_with(ty, 1);
        assert_eq!(
            h.svc.add_file(h.now, j, "http://127.0.0.1/2", "C:\\d\\2"),
            Err(Hresult::BG_E_TOO_MANY_FILES)
        );
        let e = h.create(ty);
        let two = [("http://127.0.0.1/a", "C:\\d\\a"), ("http://127.0.0.1/b", "C:\\d\\b")];
        assert_eq!(h.svc.add_file_set(h.now, e, &two), Err(Hresult::BG_E_TOO_MANY_FILES));
        assert_eq!(h.svc.file_count(e), Ok(0), "none of the set is added");
        h.assert_trace(&format!(
            "call {j} AddFile(\"http://127.0.0.1/2\") -> 0x8020001C (BG_E_TOO_MANY_FILES)"
        ));
    }
}

#[test]
fn add_file_over_max_files_per_job_too_many_files_in_job() {
    let mut h = H::bits();
    let j = h.job_with(JobType::Download, 200);
    assert_eq!(
        h.svc.add_file(h.now, j, "http://127.0.0.1/x", "C:\\d\\x"),
        Err(Hresult::BG_E_TOO_MANY_FILES_IN_JOB)
    );
    assert_eq!(h.svc.file_count(j), Ok(200));
    // Not applied to administrators (ref: bits-spec §9).
    let admin = h.svc.add_admin_user("root");
    let a = h.svc.create_job(h.now, admin, "admin", JobType::Download).unwrap();
    for i in 0..201 {
        h.svc
            .add_file(h.now, a, &format!("http://127.0.0.1/{i}"), &format!("C:\\d\\{i}"))
            .unwrap();
    }
}

#[test]
fn add_file_invalid_names_invalid_arg() {
    let mut h = H::bits();
    let j = h.create(JobType::Download);
    let long_url = format!("http://127.0.0.1/{}", "a".repeat(2200));
    let long_path = format!("C:\\{}", "a".repeat(260));
    for (remote, local) in [
        ("ftp://host/f", "C:\\d\\f"),
        ("http://host/f", "relative\\f"),
        ("http://host/f*", "C:\\d\\f"),
        (long_url.as_str(), "C:\\d\\f"),
        ("http://host/f", long_path.as_str()),
    ] {
        assert_eq!(
            h.svc.add_file(h.now, j, remote, local),
            Err(Hresult::E_INVALIDARG),
            "{remote} {local}"
        );
    }
    // Plain local paths and file:// URLs are accepted as remote names [TEST].
    h.svc.add_file(h.now, j, "file:///C:/src/f", "C:\\d\\f").unwrap();
    h.svc.add_file(h.now, j, "\\\\server\\share\\f", "C:\\d\\g").unwrap();
    // A URL's query string is not a wildcard (bits-http §3.8), but `*` in the path still is.
    h.svc.add_file(h.now, j, "http://host/f?v=1&x=y", "C:\\d\\h").unwrap();
    assert_eq!(
        h.svc.add_file(h.now, j, "http://host/f*?v=1", "C:\\d\\i"),
        Err(Hresult::E_INVALIDARG)
    );
}

// ----- GetError ------------------------------------------------------------------------

#[test]
fn get_error_only_in_error_or_transient_error_else_information_unavailable() {
    for state in ALL_STATES {
        let mut h = H::bits();
        let j = h.job_in(state, JobType::Download);
        let r = h.svc.error(j);
        match state {
            Error => assert_eq!(r.unwrap().hresult, Hresult::http(403)),
            TransientError => assert_eq!(r.unwrap().hresult, Hresult::http(503)),
            _ => assert_eq!(r, Err(Hresult::BG_E_ERROR_INFORMATION_UNAVAILABLE), "{state}"),
        }
    }
    // IBackgroundCopyError::GetFile: BG_E_FILE_NOT_AVAILABLE when no file is involved.
    let mut h = H::bits();
    let j = h.job_in(Transferring, JobType::Download);
    h.svc.handle_env(h.now, EnvEvent::NetworkLost);
    assert_eq!(h.svc.error_file(j), Err(Hresult::BG_E_FILE_NOT_AVAILABLE));
    let k = h.job_in(Suspended, JobType::Download);
    assert_eq!(h.svc.error_file(k), Err(Hresult::BG_E_ERROR_INFORMATION_UNAVAILABLE));
}

// ----- reply methods (IBackgroundCopyJob2) --------------------------------------------

/// An upload-reply job whose reply of `len` bytes has arrived.
fn replied(h: &mut H, len: u64) -> JobId {
    let j = h.connecting(JobType::UploadReply, 1);
    h.finish_file(j);
    h.ev(j, TransferEvent::Connected { bytes_total: Some(len) });
    h.ev(j, TransferEvent::Progress { bytes: len });
    h.ev(j, TransferEvent::FileDone);
    assert_eq!(h.state(j), Transferred);
    j
}

#[test]
fn get_reply_data_only_in_transferred_upload_reply() {
    for state in ALL_STATES {
        let mut h = H::bits();
        let j = h.job_in(state, JobType::UploadReply);
        let r = h.svc.reply_data_len(j);
        match state {
            // "Works before or after Complete" (ref: bits-spec §6.3).
            Transferred | Acknowledged => assert!(r.is_ok(), "{state}: {r:?}"),
            _ => assert_eq!(r, Err(Hresult::BG_E_INVALID_STATE), "{state}"),
        }
    }
}

#[test]
fn get_reply_data_over_one_megabyte_too_large() {
    let mut h = H::bits();
    let small = replied(&mut h, 1024 * 1024);
    assert_eq!(h.svc.reply_data_len(small), Ok(1024 * 1024));
    let big = replied(&mut h, 1024 * 1024 + 1);
    assert_eq!(h.svc.reply_data_len(big), Err(Hresult::BG_E_TOO_LARGE));
    h.complete(big).unwrap();
    assert_eq!(h.svc.reply_data_len(big), Err(Hresult::BG_E_TOO_LARGE));
}

#[test]
fn reply_methods_on_other_job_types_not_implemented() {
    for ty in [JobType::Download, JobType::Upload] {
        for state in [Suspended, Transferred] {
            let mut h = H::bits();
            let j = h.job_in(state, ty);
            assert_eq!(h.svc.reply_data_len(j), Err(Hresult::E_NOTIMPL), "{ty} {state}");
            assert_eq!(h.svc.reply_progress(j), Err(Hresult::E_NOTIMPL), "{ty} {state}");
            assert_eq!(h.svc.reply_file_name(j), Err(Hresult::E_NOTIMPL), "{ty} {state}");
            assert_eq!(
                h.svc.set_reply_file_name(h.now, j, Some("C:\\r")),
                Err(Hresult::E_NOTIMPL),
                "{ty} {state}"
            );
        }
    }
}

#[test]
fn set_reply_file_name_until_the_reply_download_starts() {
    let mut h = H::bits();
    let j = h.connecting(JobType::UploadReply, 1);
    assert_eq!(h.svc.reply_file_name(j), Ok(None));
    assert_eq!(h.svc.set_reply_file_name(h.now, j, Some("C:\\d\\reply")), Ok(()));
    assert_eq!(h.svc.reply_file_name(j), Ok(Some("C:\\d\\reply".into())));
    h.finish_file(j); // upload done; the reply transfer starts
    assert_eq!(
        h.svc.set_reply_file_name(h.now, j, Some("C:\\d\\r2")),
        Ok(()),
        "size not known yet"
    );
    h.ev(j, TransferEvent::Connected { bytes_total: Some(50) });
    assert_eq!(h.state(j), Transferring);
    assert_eq!(
        h.svc.set_reply_file_name(h.now, j, Some("C:\\d\\r3")),
        Err(Hresult::BG_E_INVALID_STATE),
        "TRANSFERRING with reply BytesTotal known"
    );
    let long = format!("C:\\{}", "r".repeat(260));
    let k = h.create(JobType::UploadReply);
    assert_eq!(
        h.svc.set_reply_file_name(h.now, k, Some(&long)),
        Err(Hresult::E_INVALIDARG)
    );
    h.cancel(k).unwrap();
    assert_eq!(
        h.svc.set_reply_file_name(h.now, k, None),
        Err(Hresult::BG_E_INVALID_STATE)
    );
}

// ----- getters ----------------------------------------------------------------------

#[test]
fn getters_succeed_in_every_state_including_final() {
    for ty in JobType::ALL {
        for state in ALL_STATES {
            let mut h = H::bits();
            let j = h.job_in(state, *ty);
            assert_eq!(h.svc.state(j), Ok(state));
            assert!(h.svc.progress(j).is_ok());
            assert!(h.svc.times(j).is_ok());
            assert!(h.svc.file_progress(j, 0).is_ok());
            assert!(h.svc.error_count(j).is_ok());
            assert_eq!(h.svc.priority(j), Ok(JobPriority::Normal));
            assert_eq!(h.svc.job_type(j), Ok(*ty));
            assert!(h.svc.notify_flags(j).is_ok());
            assert!(h.svc.notify_interface(j).is_ok());
            assert!(h.svc.display_name(j).is_ok());
            assert!(h.svc.minimum_retry_delay(j).is_ok());
            assert!(h.svc.no_progress_timeout(j).is_ok());
            assert_eq!(h.svc.file_progress(j, 5), Err(Hresult::BG_E_FILE_NOT_FOUND));
        }
    }
}

#[test]
fn new_job_defaults() {
    let mut h = H::bits();
    let j = h.create(JobType::Download);
    assert_eq!(h.svc.notify_flags(j), Ok(NotifyFlags(0x3)));
    assert_eq!(h.svc.notify_interface(j), Ok(None));
    assert_eq!(
        h.svc.progress(j),
        Ok(JobProgress {
            bytes_total: 0,
            bytes_transferred: 0,
            files_total: 0,
            files_transferred: 0
        })
    );
    assert_eq!(h.svc.priority(j), Ok(JobPriority::Normal));
    assert_eq!(h.svc.display_name(j).unwrap(), "test job");
    assert_eq!(h.svc.minimum_retry_delay(j), Ok(600));
    assert_eq!(h.svc.no_progress_timeout(j), Ok(1_209_600));
    assert_eq!(h.svc.maximum_download_time(j), Ok(7_776_000));
    assert_eq!(h.svc.error_count(j), Ok(0));
    assert_eq!(h.svc.times(j).unwrap().transfer_completion, None);
    // BytesTotal is BG_SIZE_UNKNOWN once a file of unknown size is in.
    h.add(j, 1);
    assert_eq!(h.svc.progress(j).unwrap().bytes_total, BG_SIZE_UNKNOWN);
    assert_eq!(h.svc.file_progress(j, 0).unwrap().bytes_total, BG_SIZE_UNKNOWN);
}

// ----- manager: GetJob, EnumJobs, job-count limits --------------------------------

#[test]
fn get_job_not_found_access_denied_and_final_states() {
    let mut h = H::bits();
    let bob = h.svc.add_user("bob");
    let j = h.job_with(JobType::Download, 1);
    assert_eq!(h.svc.get_job(h.user, j), Ok(j));
    assert_eq!(h.svc.get_job(h.user, JobId(99)), Err(Hresult::BG_E_NOT_FOUND));
    assert_eq!(h.svc.get_job(h.user, JobId(0)), Err(Hresult::BG_E_NOT_FOUND));
    assert_eq!(h.svc.get_job(bob, j), Err(Hresult::E_ACCESSDENIED));
    let root = h.svc.add_admin_user("root");
    assert_eq!(h.svc.get_job(root, j), Ok(j));
    assert_eq!(h.svc.enum_jobs(h.user), vec![j]);
    assert!(h.svc.enum_jobs(bob).is_empty());
    // Final states leave enumeration; GetJob then fails (UNVERIFIED, §11 q7).
    h.cancel(j).unwrap();
    assert!(h.svc.enum_jobs(h.user).is_empty());
    assert_eq!(h.svc.get_job(h.user, j), Err(Hresult::BG_E_NOT_FOUND));
}

#[test]
fn create_job_over_job_limits_too_many_jobs() {
    let mut h = H::bits();
    let mut jobs = Vec::new();
    for _ in 0..60 {
        jobs.push(h.create(JobType::Download));
    }
    let r = h.svc.create_job(h.now, h.user, "61st", JobType::Download);
    assert_eq!(r, Err(Hresult::BG_E_TOO_MANY_JOBS_PER_USER));
    h.assert_trace("call CreateJob(\"61st\", DOWNLOAD) -> 0x80200049 (BG_E_TOO_MANY_JOBS_PER_USER)");
    // Jobs in a final state no longer count.
    h.cancel(jobs[0]).unwrap();
    assert!(h.svc.create_job(h.now, h.user, "again", JobType::Download).is_ok());
    // 300 per machine, across users.
    for u in 0..4 {
        let user = h.svc.add_user(&format!("u{u}"));
        for _ in 0..60 {
            h.svc.create_job(h.now, user, "x", JobType::Download).unwrap();
        }
    }
    let other = h.svc.add_user("late");
    assert_eq!(
        h.svc.create_job(h.now, other, "x", JobType::Download),
        Err(Hresult::BG_E_TOO_MANY_JOBS_PER_MACHINE)
    );
    // Not applied to administrators.
    let root = h.svc.add_admin_user("root");
    for _ in 0..70 {
        h.svc.create_job(h.now, root, "x", JobType::Download).unwrap();
    }
}

// ----- string limits (§9) and argument checks ---------------------------------------

#[test]
fn display_name_description_and_cmdline_string_limits() {
    let mut h = H::bits();
    let n256 = "n".repeat(256);
    let n257 = "n".repeat(257);
    let j = h.svc.create_job(h.now, h.user, &n256, JobType::Download).unwrap();
    assert_eq!(
        h.svc.create_job(h.now, h.user, &n257, JobType::Download),
        Err(Hresult::E_INVALIDARG)
    );
    assert_eq!(h.svc.set_display_name(h.now, j, &n256), Ok(()));
    assert_eq!(
        h.svc.set_display_name(h.now, j, &n257),
        Err(Hresult::BG_E_STRING_TOO_LONG)
    );
    assert_eq!(h.svc.set_description(h.now, j, &"d".repeat(1024)), Ok(()));
    assert_eq!(
        h.svc.set_description(h.now, j, &"d".repeat(1025)),
        Err(Hresult::BG_E_STRING_TOO_LONG)
    );
    let p260 = format!("C:\\{}", "p".repeat(257));
    let p261 = format!("C:\\{}", "p".repeat(258));
    assert_eq!(h.svc.set_notify_cmdline(h.now, j, Some(&p260), None), Ok(()));
    assert_eq!(
        h.svc.set_notify_cmdline(h.now, j, Some(&p261), None),
        Err(Hresult::BG_E_STRING_TOO_LONG)
    );
    let a4000 = "a".repeat(4000);
    let a4001 = "a".repeat(4001);
    assert_eq!(
        h.svc.set_notify_cmdline(h.now, j, Some("C:\\x.exe"), Some(&a4000)),
        Ok(())
    );
    assert_eq!(
        h.svc.set_notify_cmdline(h.now, j, Some("C:\\x.exe"), Some(&a4001)),
        Err(Hresult::BG_E_STRING_TOO_LONG)
    );
    assert_eq!(
        h.svc.set_notify_cmdline(h.now, j, None, Some("x")),
        Err(Hresult::E_INVALIDARG),
        "program NULL with parameters"
    );
    assert_eq!(
        h.svc.set_notify_cmdline(h.now, j, None, None),
        Ok(()),
        "both NULL removes it"
    );
    assert_eq!(h.svc.notify_cmdline(j), Ok(None));
}

#[test]
fn set_priority_outside_the_enum_not_implemented() {
    let mut h = H::bits();
    let j = h.create(JobType::Download);
    for p in JobPriority::ALL {
        assert_eq!(h.svc.set_priority(h.now, j, p.value()), Ok(()));
        assert_eq!(h.svc.priority(j), Ok(*p));
    }
    for bad in [4, 99, u32::MAX] {
        assert_eq!(h.svc.set_priority(h.now, j, bad), Err(Hresult::E_NOTIMPL));
    }
    assert_eq!(h.svc.priority(j), Ok(JobPriority::Low));
}

#[test]
fn set_notify_flags_invalid_not_implemented() {
    let mut h = H::bits();
    let j = h.create(JobType::Download);
    assert_eq!(
        h.svc.set_notify_flags(h.now, j, 0x1F),
        Ok(()),
        "[TEST] 0x1F is accepted"
    );
    assert_eq!(h.svc.notify_flags(j), Ok(NotifyFlags(0x1F)));
    for bad in [0x40, 0x80, 0x1_0000, u32::MAX] {
        assert_eq!(
            h.svc.set_notify_flags(h.now, j, bad),
            Err(Hresult::E_NOTIMPL),
            "0x{bad:X}"
        );
    }
    assert_eq!(h.svc.notify_flags(j), Ok(NotifyFlags(0x1F)));
    h.assert_trace(&format!("call {j} SetNotifyFlags(0x40) -> 0x80004001 (E_NOTIMPL)"));
}

#[test]
fn generic_call_gives_the_same_replies() {
    let mut h = H::bits();
    let user = h.user;
    let r = h.svc.call(
        h.now,
        &ApiCall::CreateJob {
            user,
            display_name: "g".into(),
            job_type: JobType::Download,
        },
    );
    let ApiValue::Job(j) = r.value else { panic!("{r:?}") };
    assert_eq!(
        h.svc.call(h.now, &ApiCall::Resume { job: j }).hresult,
        Hresult::BG_E_EMPTY
    );
    let add = ApiCall::AddFile {
        job: j,
        remote_name: "http://127.0.0.1/f".into(),
        local_name: "C:\\d\\f".into(),
    };
    assert_eq!(h.svc.call(h.now, &add).hresult, Hresult::S_OK);
    let flags = ApiCall::SetNotifyFlags { job: j, flags: 0x40 };
    assert_eq!(h.svc.call(h.now, &flags).hresult, Hresult::E_NOTIMPL);
    let err = h.svc.call(h.now, &ApiCall::GetError { job: j });
    assert_eq!(err.hresult, Hresult::BG_E_ERROR_INFORMATION_UNAVAILABLE);
    let cancel = h.svc.call(h.now, &ApiCall::Cancel { job: j });
    assert_eq!(cancel.hresult, Hresult::S_OK);
    assert_eq!(
        h.svc.call(h.now, &ApiCall::GetState { job: j }).value,
        ApiValue::State(Cancelled)
    );
    assert_eq!(
        h.svc.call(h.now, &ApiCall::Cancel { job: j }).hresult,
        Hresult::BG_E_INVALID_STATE
    );
}

// ----- Delivery Optimization (§8.1) ------------------------------------------------

#[test]
fn do_final_states_give_do_invalid_state() {
    for state in FINAL {
        let mut h = H::dos();
        let j = match state {
            Acknowledged => {
                let j = h.connecting(JobType::Download, 1);
                h.finish_all(j);
                h.complete(j).unwrap();
                j
            }
            _ => {
                let j = h.job_with(JobType::Download, 1);
                h.cancel(j).unwrap();
                j
            }
        };
        let bad = Err(Hresult::DO_E_INVALID_STATE);
        assert_eq!(h.svc.cancel(h.now, j).map(|_| ()), bad);
        assert_eq!(h.svc.resume(h.now, j), bad);
        assert_eq!(h.svc.suspend(h.now, j), bad);
        assert_eq!(h.svc.complete(h.now, j).map(|_| ()), bad);
        assert_eq!(h.svc.set_notify_flags(h.now, j, 3), bad);
        assert_eq!(h.svc.set_no_progress_timeout(h.now, j, 60), bad);
        assert_eq!(h.svc.set_priority(h.now, j, 0), bad);
        assert_eq!(h.svc.add_file(h.now, j, "http://127.0.0.1/x", "C:\\d\\x"), bad);
        assert_eq!(h.svc.state(j), Ok(state));
        assert_eq!(h.svc.get_job(h.user, j), Err(Hresult::DO_E_JOB_NOT_FOUND));
    }
}

#[test]
fn do_resume_without_files_job_empty() {
    let mut h = H::dos();
    let j = h.create(JobType::Download);
    assert_eq!(h.resume(j), Err(Hresult::DO_E_JOB_EMPTY));
    assert_eq!(h.state(j), Suspended);
    assert_eq!(h.svc.get_job(h.user, JobId(42)), Err(Hresult::DO_E_JOB_NOT_FOUND));
}

#[test]
fn do_never_reports_connecting() {
    let mut h = H::dos();
    let j = h.job_with(JobType::Download, 2);
    h.resume(j).unwrap();
    assert_eq!(h.state(j), Transferring, "Resume moves a new job to TRANSFERRING");
    assert_eq!(
        h.transitions(j),
        [
            "SUSPENDED -> QUEUED (resume)",
            "QUEUED -> TRANSFERRING (scheduled_connecting_hidden)"
        ]
    );
    h.finish_all(j);
    assert_eq!(h.state(j), Transferred);
    // A transient error is retried by DO's own policy (60 s in the profile; the job's
    // MinimumRetryDelay is not used), back to TRANSFERRING, never through CONNECTING.
    let k = h.job_with(JobType::Download, 1);
    h.resume(k).unwrap();
    h.fail_transient(k);
    assert_eq!(h.state(k), TransientError);
    h.wait_secs(59);
    assert_eq!(h.state(k), TransientError);
    h.wait_secs(1);
    assert_eq!(h.state(k), Transferring);
    h.assert_no_trace("CONNECTING");
}

#[test]
fn do_download_jobs_only() {
    let mut h = H::dos();
    for ty in [JobType::Upload, JobType::UploadReply] {
        assert_eq!(
            h.svc.create_job(h.now, h.user, "up", ty),
            Err(Hresult::E_NOTIMPL),
            "{ty} (code UNVERIFIED)"
        );
    }
    assert!(h.svc.create_job(h.now, h.user, "down", JobType::Download).is_ok());
}

#[test]
fn do_error_context_none_except_http_403() {
    for (status, context, state) in [
        (403, ErrorContext::RemoteFile, Error),
        (404, ErrorContext::None, TransientError),
        (500, ErrorContext::None, TransientError),
    ] {
        let mut h = H::dos();
        let j = h.job_in(Transferring, JobType::Download);
        h.fail_http(j, status);
        assert_eq!(h.state(j), state, "{status}");
        let e = h.svc.error(j).unwrap();
        assert_eq!((e.hresult, e.context), (Hresult::http(status), context), "{status}");
    }
    let mut h = H::dos();
    let j = h.job_in(Transferring, JobType::Download);
    h.ev(
        j,
        TransferEvent::Failed(TransferFailure::Network(NetworkFailure::Timeout)),
    );
    assert_eq!(h.svc.error(j).unwrap().context, ErrorContext::None);
    let k = h.job_in(Transferring, JobType::Download);
    h.svc.handle_env(h.now, EnvEvent::NetworkLost);
    let e = h.svc.error(k).unwrap();
    assert_eq!(
        (e.hresult, e.context),
        (Hresult::DO_E_BLOCKED_BY_NO_NETWORK, ErrorContext::None)
    );
    assert_eq!(h.svc.error_file(k), Err(Hresult::DO_E_FILE_NOT_AVAILABLE));
}

#[test]
fn do_get_error_outside_error_states_do_error_information_unavailable() {
    let mut h = H::dos();
    let j = h.job_in(Transferring, JobType::Download);
    assert_eq!(h.svc.error(j), Err(Hresult::DO_E_ERROR_INFORMATION_UNAVAILABLE));
}

#[test]
fn do_undocumented_methods_not_implemented() {
    let mut h = H::dos();
    let j = h.job_with(JobType::Download, 1);
    let ni = Err(Hresult::E_NOTIMPL);
    assert_eq!(h.svc.set_display_name(h.now, j, "x"), ni);
    assert_eq!(h.svc.set_description(h.now, j, "x"), ni);
    assert_eq!(h.svc.set_minimum_retry_delay(h.now, j, 60), ni);
    assert_eq!(h.svc.set_maximum_download_time(h.now, j, 60), ni);
    assert_eq!(h.svc.set_notify_cmdline(h.now, j, Some("C:\\x.exe"), None), ni);
    assert_eq!(h.svc.error_count(j), Err(Hresult::E_NOTIMPL));
    assert_eq!(h.svc.reply_data_len(j), Err(Hresult::E_NOTIMPL));
    // Documented members work.
    assert_eq!(h.svc.set_notify_flags(h.now, j, 0xB), Ok(()));
    assert_eq!(h.svc.set_no_progress_timeout(h.now, j, 120), Ok(()));
    assert_eq!(h.svc.set_priority(h.now, j, 0), Ok(()));
}

#[test]
fn do_background_priorities_behave_alike_and_run_together() {
    let mut h = H::dos();
    let mut jobs = Vec::new();
    for p in [JobPriority::High, JobPriority::Normal, JobPriority::Low] {
        let j = h.job_with(JobType::Download, 1);
        h.svc.set_priority(h.now, j, p.value()).unwrap();
        h.resume(j).unwrap();
        jobs.push(j);
    }
    for j in jobs {
        assert_eq!(h.state(j), Transferring, "foreground and background run simultaneously");
    }
    // The BITS profile runs one background job at a time, highest priority first.
    let mut b = H::bits();
    let low = b.job_with(JobType::Download, 1);
    b.svc.set_priority(b.now, low, 3).unwrap();
    b.resume(low).unwrap();
    let high = b.job_with(JobType::Download, 1);
    b.svc.set_priority(b.now, high, 1).unwrap();
    b.resume(high).unwrap();
    assert_eq!(
        (b.state(high), b.state(low)),
        (Connecting, Queued),
        "HIGH pre-empts LOW"
    );
}

#[test]
fn set_priority_on_a_running_background_job_keeps_scheduling_sound() {
    // Regression (found by model_based): re-prioritising a running background job left a
    // stale scheduler entry, and the next pre-emption check looped forever.
    let mut h = H::bits();
    let a = h.job_in(Transferring, JobType::Download);
    h.svc.set_priority(h.now, a, 3).unwrap(); // NORMAL → LOW while running
    let b = h.job_with(JobType::Download, 1);
    h.resume(b).unwrap(); // NORMAL pre-empts the LOW job
    assert_eq!((h.state(a), h.state(b)), (Queued, Connecting));
    h.svc.set_priority(h.now, b, 0).unwrap(); // running background → FOREGROUND
    h.cancel(b).unwrap();
    assert_eq!(h.state(a), Connecting, "the background slot is free again");
}
