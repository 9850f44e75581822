//! The API surface: IBackgroundCopyManager, IBackgroundCopyJob(2,3,4),
//! IBackgroundCopyFile and IBackgroundCopyError, with BITS's return codes.
//!
//! Every method takes the caller's `now`. Failures return the HRESULT Windows would;
//! successes that carry a code (BG_S_PARTIAL_COMPLETE) return it in `Ok`.
//! ref: bits-spec §1.2–§1.5, §3, §4, §6.3, §9.

use crate::effect::Effect;
use crate::rules::{method_rule, Method, Trigger};
use crate::service::{FileEntry, Job, JobError, Reply, Service, TimerKind};
use crate::trace::TraceKind;
use crate::types::*;
use crate::Hresult;
use serde::{Deserialize, Serialize};

/// Result of an API call.
pub type ApiResult<T> = Result<T, Hresult>;

impl Service {
    /// Checks that `method` exists in this flavor and is allowed in the job's state.
    pub(crate) fn guard(&self, id: JobId, method: Method) -> ApiResult<&Job> {
        let job = self.find(id)?;
        if self.profile.unsupported.contains(&method) {
            return Err(self.profile.codes.not_implemented);
        }
        if !method_rule(method).allowed.permits(job.state) {
            return Err(match method {
                Method::GetError => self.profile.codes.error_information_unavailable,
                _ => self.profile.codes.invalid_state,
            });
        }
        Ok(job)
    }

    /// Records a state-changing or setter call in the trace and returns its result.
    pub(crate) fn traced<T>(
        &mut self,
        job: Option<JobId>,
        call: impl FnOnce() -> String,
        result: ApiResult<T>,
    ) -> ApiResult<T> {
        if self.trace_enabled {
            let hr = match &result {
                Ok(_) => Hresult::S_OK,
                Err(e) => *e,
            };
            self.record(TraceKind::Call {
                job,
                call: call(),
                result: hr,
            });
        }
        result
    }

    /// [`Service::traced`] for calls with several success codes (S_FALSE, BG_S_*):
    /// the trace shows the code the call returned, not S_OK.
    pub(crate) fn traced_code(
        &mut self,
        job: Option<JobId>,
        call: impl FnOnce() -> String,
        result: ApiResult<Hresult>,
    ) -> ApiResult<Hresult> {
        if self.trace_enabled {
            let hr = match &result {
                Ok(hr) => *hr,
                Err(e) => *e,
            };
            self.record(TraceKind::Call {
                job,
                call: call(),
                result: hr,
            });
        }
        result
    }

    /// A property changed: ModificationTime, the inactivity clock, JobModification.
    pub(crate) fn touched(&mut self, id: JobId) {
        let now = self.now;
        let job = self.job_mut(id);
        job.modification = now;
        job.last_activity = now;
        self.modified(id);
    }

    // ----- IBackgroundCopyManager ----------------------------------------------

    /// CreateJob: a new job in SUSPENDED (ref: bits-spec §1.2).
    pub fn create_job(&mut self, now: Time, user: UserId, display_name: &str, job_type: JobType) -> ApiResult<JobId> {
        self.advance(now);
        let result = self.create_job_inner(user, display_name, job_type);
        match result {
            Ok(id) => Ok(id),
            Err(e) => self.traced(None, || format!("CreateJob({display_name:?}, {job_type})"), Err(e)),
        }
    }

    fn create_job_inner(&mut self, user: UserId, display_name: &str, job_type: JobType) -> ApiResult<JobId> {
        if self.users.get(user.0 as usize).is_none() {
            return Err(Hresult::E_ACCESSDENIED);
        }
        let limits = self.profile.limits;
        if display_name.chars().count() > limits.display_name_chars {
            return Err(Hresult::E_INVALIDARG); // ref: bits-spec §1.2
        }
        if !self.profile.job_types.contains(&job_type) {
            return Err(self.profile.codes.not_implemented); // ref: bits-spec §8.1 (DO)
        }
        if !self.exempt_from_limits(user) {
            // ref: bits-spec §9; "Creating a Job": not applied to administrators or services
            // Counted incrementally: scanning every job ever created made CreateJob O(n).
            if self.users[user.0 as usize].live_jobs >= limits.max_jobs_per_user {
                return Err(Hresult::BG_E_TOO_MANY_JOBS_PER_USER);
            }
            if self.live_jobs >= limits.max_jobs_per_machine {
                return Err(Hresult::BG_E_TOO_MANY_JOBS_PER_MACHINE);
            }
        }
        let now = self.now;
        let id = JobId(self.jobs.len() as u32 + 1);
        let priority = JobPriority::Normal; // ref: bits-spec §1.2
        self.jobs.push(Job {
            id,
            owner: user,
            job_type,
            display_name: display_name.to_string(),
            description: String::new(),
            priority,
            state: JobState::Suspended,
            files: Vec::new(),
            notify_flags: NotifyFlags::DEFAULT,
            callback: None,
            callback_user: user,
            cmdline: None,
            min_retry_delay: self.profile.default_min_retry_delay,
            no_progress_timeout: self.profile.default_no_progress_timeout_for(priority),
            no_progress_explicit: false,
            max_download_time: self.profile.default_max_download_time,
            error: None,
            error_count: 0,
            creation: now,
            modification: now,
            transfer_completion: None,
            reply: Reply::default(),
            transfer: None,
            ready_key: None,
            waiting_for_network: false,
            no_progress_since: None,
            active_since: None,
            active_elapsed: Span::ZERO,
            last_activity: now,
            deadlines: Default::default(),
            channels: Default::default(),
            credentials: Vec::new(),
            cost_flags: self.profile.default_cost_flags,
            blocked_by_policy: false,
            upload_session_opened: false,
            cancel_session: None,
        });
        self.users[user.0 as usize].live_jobs += 1;
        self.live_jobs += 1;
        if let Some(t) = self.profile.inactivity_timeout {
            self.arm(id, TimerKind::Inactivity, now.plus(t));
        }
        if let Some(t) = self.profile.retention {
            self.arm(id, TimerKind::Retention, now.plus(t));
        }
        let user_name = self.user_name(user).to_string();
        self.record(TraceKind::JobCreated {
            job: id,
            job_type,
            user: user_name,
            display_name: display_name.to_string(),
        });
        Ok(id)
    }

    /// GetJob: jobs in a final state have left the queue and are not found (UNVERIFIED,
    /// bits-spec §11 q7; MOZ-01 expects BG_E_NOT_FOUND after Cancel); another user's job
    /// gives E_ACCESSDENIED (ref: bits-spec §1.4).
    pub fn get_job(&self, user: UserId, id: JobId) -> ApiResult<JobId> {
        let job = self.find(id)?;
        if job.state.is_final() {
            return Err(self.profile.codes.not_found);
        }
        if job.owner != user && !self.users.get(user.0 as usize).is_some_and(|u| u.admin) {
            return Err(Hresult::E_ACCESSDENIED);
        }
        Ok(id)
    }

    /// EnumJobs: the user's jobs, final states excluded (ref: bits-spec §1.1).
    pub fn enum_jobs(&self, user: UserId) -> Vec<JobId> {
        self.jobs
            .iter()
            .filter(|j| j.owner == user && !j.state.is_final())
            .map(|j| j.id)
            .collect()
    }

    // ----- files -----------------------------------------------------------------

    /// AddFile (ref: bits-spec §1.4, §6.2, §7.3, §9).
    pub fn add_file(&mut self, now: Time, id: JobId, remote_name: &str, local_name: &str) -> ApiResult<()> {
        self.add_file_set(now, id, &[(remote_name, local_name)])
    }

    /// AddFileSet: all or nothing.
    pub fn add_file_set(&mut self, now: Time, id: JobId, files: &[(&str, &str)]) -> ApiResult<()> {
        self.advance(now);
        let result = self.add_files_inner(id, files);
        let describe = || match files {
            [(r, _)] => format!("AddFile({r:?})"),
            _ => format!("AddFileSet({} files)", files.len()),
        };
        self.traced(Some(id), describe, result)
    }

    fn add_files_inner(&mut self, id: JobId, files: &[(&str, &str)]) -> ApiResult<()> {
        let limits = self.profile.limits;
        let job = self.guard(id, Method::AddFile)?;
        if job.job_type.is_upload() && job.files.len() + files.len() > 1 {
            return Err(Hresult::BG_E_TOO_MANY_FILES); // ref: bits-spec §6.2
        }
        let owner = job.owner;
        let not_logged_on = self.users[owner.0 as usize].kind == OwnerKind::NonInteractiveUser
            && !self.users[owner.0 as usize].logged_on;
        if let (true, Some(hr)) = (not_logged_on, self.profile.not_logged_on_add_file) {
            // ref: DFIR-ORC issue #34 ("Failed to add file … hr=0x800704dd"), PS-04
            return Err(hr);
        }
        if !self.exempt_from_limits(owner) && job.files.len() + files.len() > limits.max_files_per_job {
            return Err(Hresult::BG_E_TOO_MANY_FILES_IN_JOB); // ref: bits-spec §9
        }
        for (remote, local) in files {
            if !valid_remote(remote, limits.remote_url_chars) || !valid_local(local, limits.max_path) {
                return Err(Hresult::E_INVALIDARG); // ref: bits-spec §7.3
            }
        }
        let job = self.job_mut(id);
        for (remote, local) in files {
            job.files.push(FileEntry {
                remote_name: remote.to_string(),
                local_name: local.to_string(),
                bytes_total: None,
                bytes_transferred: 0,
                transferred: false,
                completed: false,
            });
        }
        self.touched(id);
        Ok(())
    }

    // ----- state-changing methods ----------------------------------------------

    /// Resume (ref: bits-spec §1.3, §1.5): SUSPENDED/ERROR/TRANSIENT_ERROR → QUEUED (a
    /// retry now, ignoring the retry delay); BG_E_EMPTY without files; no effect on
    /// QUEUED/CONNECTING/TRANSFERRING; resets the MaximumDownloadTime clock (§3.3).
    pub fn resume(&mut self, now: Time, id: JobId) -> ApiResult<()> {
        self.advance(now);
        let result = self.resume_inner(id);
        let result = self.traced(Some(id), || "Resume".into(), result);
        self.schedule();
        result
    }

    fn resume_inner(&mut self, id: JobId) -> ApiResult<()> {
        let job = self.guard(id, Method::Resume)?;
        if job.files.is_empty() {
            return Err(self.profile.codes.empty);
        }
        let nothing_left =
            job.first_unfinished_file().is_none() && (job.job_type != JobType::UploadReply || job.reply.done);
        match job.state {
            JobState::Transferred if nothing_left => {}
            JobState::Suspended | JobState::Error | JobState::TransientError | JobState::Transferred => {
                self.job_mut(id).active_elapsed = Span::ZERO;
                self.transition(id, Trigger::Resume);
            }
            _ => {}
        }
        Ok(())
    }

    /// Suspend: any non-final state → SUSPENDED (ref: bits-spec §1.3; in ERROR and
    /// TRANSFERRED this follows LC and is UNVERIFIED, §11 q5).
    pub fn suspend(&mut self, now: Time, id: JobId) -> ApiResult<()> {
        self.advance(now);
        let result = self.guard(id, Method::Suspend).map(|j| j.state);
        let result = result.map(|state| {
            if state != JobState::Suspended {
                self.transition(id, Trigger::Suspend);
            }
        });
        let result = self.traced(Some(id), || "Suspend".into(), result);
        self.schedule();
        result
    }

    /// Cancel: → CANCELLED, temporary files deleted (ref: bits-spec §1.3, §1.5).
    pub fn cancel(&mut self, now: Time, id: JobId) -> ApiResult<Hresult> {
        self.advance(now);
        let result = self.guard(id, Method::Cancel).map(|j| j.files.len());
        let result = result.map(|n| {
            let session = self.session_to_cancel(id);
            self.transition(id, Trigger::Cancel);
            let deleted = self.delete_temp_files(id, (0..n).collect());
            if let Some(what) = session {
                self.start_cancel_session(id, what);
            }
            // ref: IBackgroundCopyJob::Cancel: "successfully canceled; however, the
            // service was unable to delete the temporary files"
            if deleted {
                Hresult::S_OK
            } else {
                Hresult::BG_S_UNABLE_TO_DELETE_FILES
            }
        });
        let result = self.traced_code(Some(id), || "Cancel".into(), result);
        self.schedule();
        result
    }

    /// Complete (ref: bits-spec §1.3, §1.4, §1.5): downloads in any non-final state keep
    /// the finished files (BG_S_PARTIAL_COMPLETE when some were not finished); uploads
    /// only in TRANSFERRED.
    pub fn complete(&mut self, now: Time, id: JobId) -> ApiResult<Hresult> {
        self.advance(now);
        let result = self.complete_inner(id);
        let result = self.traced_code(Some(id), || "Complete".into(), result);
        self.schedule();
        result
    }

    fn complete_inner(&mut self, id: JobId) -> ApiResult<Hresult> {
        let method = if self.find(id)?.job_type.is_upload() {
            Method::CompleteUpload
        } else {
            Method::CompleteDownload
        };
        let job = self.guard(id, method)?;
        // Files transferred and not yet renamed by an earlier Complete.
        let finished: Vec<(usize, String)> = job
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.transferred && !f.completed)
            .map(|(i, f)| (i, f.local_name.clone()))
            .collect();
        let unfinished: Vec<usize> = job
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.transferred)
            .map(|(i, _)| i)
            .collect();
        let is_download = job.job_type == JobType::Download;
        let reply = (job.job_type == JobType::UploadReply).then(|| match &job.reply.file_name {
            Some(name) => name.clone(),
            None => generated_reply_file(job.files.first().map_or("", |f| f.local_name.as_str()), id),
        });
        if is_download {
            // ref: IBackgroundCopyJob::Complete: a rename onto a destination in use or
            // not writable fails; "If BITS cannot rename all the temporary files, the job
            // remains in the transfer queue. Files that were successfully renamed are
            // available"; Completed tells which.
            let (renamable, blocked): (Vec<_>, Vec<_>) = finished
                .into_iter()
                .partition(|(_, local)| !self.locked_files.contains_key(&(local.clone(), false)));
            if let Some((_, first)) = blocked.first() {
                let hresult = self.locked_files[&(first.clone(), false)].hresult();
                self.rename(id, renamable);
                self.record(TraceKind::RenameFailed {
                    job: id,
                    files: blocked.iter().map(|(i, _)| *i).collect(),
                    hresult,
                });
                return Err(hresult);
            }
            self.transition(id, Trigger::Complete);
            self.rename(id, renamable);
            let deleted = self.delete_temp_files(id, unfinished.clone());
            // ref: Complete: BG_S_UNABLE_TO_DELETE_FILES "successfully completed; however,
            // … unable to delete the temporary files" (taken over BG_S_PARTIAL_COMPLETE)
            return Ok(match (deleted, unfinished.is_empty()) {
                (false, _) => Hresult::BG_S_UNABLE_TO_DELETE_FILES,
                (true, false) => Hresult::BG_S_PARTIAL_COMPLETE,
                // ref: bits-spec §11 q6: an empty job completes with S_OK (UNVERIFIED)
                (true, true) => Hresult::S_OK,
            });
        }
        self.transition(id, Trigger::Complete);
        if reply.is_some() {
            self.effects.push_back(Effect::RenameFiles {
                job: id,
                files: Vec::new(),
                reply,
            });
        }
        Ok(Hresult::S_OK)
    }

    /// Renames finished downloads to their local names (marks them Completed).
    fn rename(&mut self, id: JobId, files: Vec<(usize, String)>) {
        for (i, _) in &files {
            self.job_mut(id).files[*i].completed = true;
        }
        if !files.is_empty() {
            self.record(TraceKind::FilesRenamed {
                job: id,
                files: files.iter().map(|(i, _)| *i).collect(),
            });
        }
        self.effects.push_back(Effect::RenameFiles {
            job: id,
            files,
            reply: None,
        });
    }

    // ----- setters -------------------------------------------------------------

    /// SetDisplayName: ≤ 256 characters (ref: bits-spec §9).
    pub fn set_display_name(&mut self, now: Time, id: JobId, name: &str) -> ApiResult<()> {
        self.advance(now);
        let max = self.profile.limits.display_name_chars;
        let result = self.guard(id, Method::SetDisplayName).and_then(|_| {
            if name.chars().count() > max {
                Err(Hresult::BG_E_STRING_TOO_LONG)
            } else {
                Ok(())
            }
        });
        let result = result.map(|_| {
            self.job_mut(id).display_name = name.to_string();
            self.touched(id);
        });
        self.traced(Some(id), || format!("SetDisplayName({name:?})"), result)
    }

    /// SetDescription: ≤ 1,024 characters (ref: bits-spec §9).
    pub fn set_description(&mut self, now: Time, id: JobId, text: &str) -> ApiResult<()> {
        self.advance(now);
        let max = self.profile.limits.description_chars;
        let result = self.guard(id, Method::SetDescription).and_then(|_| {
            if text.chars().count() > max {
                Err(Hresult::BG_E_STRING_TOO_LONG)
            } else {
                Ok(())
            }
        });
        let result = result.map(|_| {
            self.job_mut(id).description = text.to_string();
            self.touched(id);
        });
        self.traced(
            Some(id),
            || format!("SetDescription({} chars)", text.chars().count()),
            result,
        )
    }

    /// SetPriority: a value outside BG_JOB_PRIORITY → E_NOTIMPL (ref: bits-spec §5.1).
    pub fn set_priority(&mut self, now: Time, id: JobId, value: u32) -> ApiResult<()> {
        self.advance(now);
        let result = self
            .guard(id, Method::SetPriority)
            .and_then(|_| JobPriority::from_value(value).ok_or(Hresult::E_NOTIMPL));
        let result = result.map(|p| {
            let profile_npt = self.profile.default_no_progress_timeout_for(p);
            let class = self.profile.class_of(p);
            let old_class = self.profile.class_of(self.job(id).priority);
            // A running background job is re-keyed under its new class (or leaves the
            // background set for FOREGROUND), else the scheduler keeps a stale entry it can
            // neither pre-empt nor remove. ref: bits-spec §5.2
            if self.active_background.remove(&(old_class, id)) && p != JobPriority::Foreground {
                self.active_background.insert((class, id));
            }
            let job = self.job_mut(id);
            job.priority = p;
            if !job.no_progress_explicit {
                job.no_progress_timeout = profile_npt; // DO: default depends on priority (§8.1)
            }
            let queued_seq = job.ready_key.map(|(_, seq)| seq);
            // Back in line under the new class, keeping its place (ref: bits-spec §5.2).
            if let Some(seq) = queued_seq {
                self.unready(id);
                self.job_mut(id).ready_key = Some((class, seq));
                self.ready.insert((class, seq, id));
            }
            self.touched(id);
        });
        let name = JobPriority::from_value(value).map_or_else(|| value.to_string(), |p| p.to_string());
        let result = self.traced(Some(id), || format!("SetPriority({name})"), result);
        self.schedule();
        result
    }

    /// SetNotifyFlags: undefined bits → E_NOTIMPL (ref: bits-spec §4.1).
    pub fn set_notify_flags(&mut self, now: Time, id: JobId, flags: u32) -> ApiResult<()> {
        self.advance(now);
        let valid = if flags & !NotifyFlags::ALL_BITS != 0 {
            Err(Hresult::E_NOTIMPL)
        } else {
            Ok(())
        };
        let result = self.guard(id, Method::SetNotifyFlags).and(valid);
        let result = result.map(|_| {
            self.job_mut(id).notify_flags = NotifyFlags(flags);
            self.touched(id);
        });
        self.traced(Some(id), || format!("SetNotifyFlags(0x{flags:X})"), result)
    }

    /// SetNotifyInterface: the last registration wins; `None` removes it. Owed
    /// notifications are delivered to a new registration (ref: bits-spec §4.2).
    pub fn set_notify_interface(&mut self, now: Time, id: JobId, callback: Option<Callback>) -> ApiResult<()> {
        self.advance(now);
        let result = self.guard(id, Method::SetNotifyInterface).map(|_| ());
        let result = result.map(|_| {
            let job = self.job_mut(id);
            job.callback = callback;
            job.callback_user = job.owner;
            self.touched(id);
        });
        let describe = || match callback {
            Some(c) => format!("SetNotifyInterface(callback {})", c.id),
            None => "SetNotifyInterface(NULL)".to_string(),
        };
        self.traced(Some(id), describe, result)
    }

    /// TakeOwnership: `user` becomes the owner. The command line is removed (ref:
    /// bits-spec §4.4); registered callbacks keep running as the user who registered
    /// them (§4.2).
    pub fn take_ownership(&mut self, now: Time, id: JobId, user: UserId) -> ApiResult<()> {
        self.advance(now);
        let known = self.users.get(user.0 as usize).is_some();
        let result = self
            .guard(id, Method::TakeOwnership)
            .and_then(|_| known.then_some(()).ok_or(Hresult::E_ACCESSDENIED));
        let result = result.map(|_| {
            let old = self.job(id).owner;
            if old != user {
                // The live-job count per user moves with the job (ref: bits-spec §9).
                self.users[old.0 as usize].live_jobs -= 1;
                self.users[user.0 as usize].live_jobs += 1;
            }
            let job = self.job_mut(id);
            job.owner = user;
            job.cmdline = None;
            // ref: SetCredentials: "Calling … TakeOwnership removes the credentials"
            job.credentials.clear();
            self.touched(id);
        });
        let name = self.user_name(user).to_string();
        self.traced(Some(id), || format!("TakeOwnership({name})"), result)
    }

    /// SetNotifyCmdLine (ref: bits-spec §4.4): program ≤ MAX_PATH, parameters ≤ 4,000
    /// characters; both `None` removes it; a program-less command line is invalid.
    pub fn set_notify_cmdline(
        &mut self,
        now: Time,
        id: JobId,
        program: Option<&str>,
        parameters: Option<&str>,
    ) -> ApiResult<()> {
        self.advance(now);
        let limits = self.profile.limits;
        let result = self
            .guard(id, Method::SetNotifyCmdLine)
            .and_then(|_| match (program, parameters) {
                (None, Some(_)) => Err(Hresult::E_INVALIDARG),
                (Some(p), _) if p.chars().count() > limits.max_path => Err(Hresult::BG_E_STRING_TOO_LONG),
                (_, Some(a)) if a.chars().count() > limits.cmdline_parameter_chars => {
                    Err(Hresult::BG_E_STRING_TOO_LONG)
                }
                _ => Ok(()),
            });
        let result = result.map(|_| {
            self.job_mut(id).cmdline = program.map(|p| (p.to_string(), parameters.unwrap_or(p).to_string()));
            self.touched(id);
        });
        self.traced(Some(id), || format!("SetNotifyCmdLine({program:?})"), result)
    }

    /// SetMinimumRetryDelay: seconds, raised to the 5 s floor (ref: bits-spec §3.1).
    pub fn set_minimum_retry_delay(&mut self, now: Time, id: JobId, seconds: u32) -> ApiResult<()> {
        self.advance(now);
        let floor = self.profile.limits.min_retry_delay_floor;
        let result = self.guard(id, Method::SetMinimumRetryDelay).map(|_| ());
        let result = result.map(|_| {
            self.job_mut(id).min_retry_delay = Span::from_secs(seconds as u64).max(floor);
            self.touched(id);
        });
        self.traced(Some(id), || format!("SetMinimumRetryDelay({seconds})"), result)
    }

    /// SetNoProgressTimeout (ref: bits-spec §3.2): a job already in TRANSIENT_ERROR whose
    /// new period has run out (0 included) goes to ERROR now (MOZ-06).
    pub fn set_no_progress_timeout(&mut self, now: Time, id: JobId, seconds: u32) -> ApiResult<()> {
        self.advance(now);
        let result = self.guard(id, Method::SetNoProgressTimeout).map(|_| ());
        let result = result.map(|_| {
            let timeout = Span::from_secs(seconds as u64);
            let job = self.job_mut(id);
            job.no_progress_timeout = timeout;
            job.no_progress_explicit = true;
            let waiting = job.state == JobState::TransientError;
            let since = job.no_progress_since;
            self.touched(id);
            if let (true, Some(since)) = (waiting, since) {
                let due = since.plus(timeout);
                if due <= self.now {
                    self.no_progress_expired(id);
                } else {
                    self.arm(id, TimerKind::NoProgress, due);
                }
            }
        });
        let result = self.traced(Some(id), || format!("SetNoProgressTimeout({seconds})"), result);
        self.schedule();
        result
    }

    /// SetMaximumDownloadTime (IBackgroundCopyJob4, ref: bits-spec §3.3).
    pub fn set_maximum_download_time(&mut self, now: Time, id: JobId, seconds: u32) -> ApiResult<()> {
        self.advance(now);
        let result = self.guard(id, Method::SetMaximumDownloadTime).map(|j| j.active_since);
        let result = result.map(|active_since| {
            let max = Span::from_secs(seconds as u64);
            let job = self.job_mut(id);
            job.max_download_time = max;
            let elapsed = job.active_elapsed;
            self.touched(id);
            if let Some(since) = active_since {
                let left = Span(max.0.saturating_sub(elapsed.0));
                self.arm(id, TimerKind::MaxDownload, since.plus(left));
            }
        });
        let result = self.traced(Some(id), || format!("SetMaximumDownloadTime({seconds})"), result);
        self.handle_timeout(self.now);
        result
    }

    /// SetReplyFileName (ref: bits-spec §1.4, §6.3): only for upload-reply jobs, and only
    /// until the reply download has started.
    pub fn set_reply_file_name(&mut self, now: Time, id: JobId, path: Option<&str>) -> ApiResult<()> {
        self.advance(now);
        let max_path = self.profile.limits.max_path;
        let result = self.guard(id, Method::SetReplyFileName).and_then(|job| {
            if job.job_type != JobType::UploadReply {
                return Err(Hresult::E_NOTIMPL);
            }
            if job.state == JobState::Transferring && job.reply.bytes_total.is_some() {
                return Err(self.profile.codes.invalid_state);
            }
            if path.is_some_and(|p| p.chars().count() > max_path) {
                return Err(Hresult::E_INVALIDARG);
            }
            Ok(())
        });
        let result = result.map(|_| {
            self.job_mut(id).reply.file_name = path.filter(|p| !p.is_empty()).map(str::to_string);
            self.touched(id);
        });
        self.traced(Some(id), || format!("SetReplyFileName({path:?})"), result)
    }

    /// IBackgroundCopyJob5::SetProperty(BITS_JOB_PROPERTY_ID_COST_FLAGS): the network
    /// cost states the job may transfer on; takes effect at once (ref: policy.rs).
    pub fn set_cost_flags(&mut self, now: Time, id: JobId, flags: u32) -> ApiResult<()> {
        self.advance(now);
        let result = self.guard(id, Method::SetCostFlags).map(|_| ());
        let result = result.map(|_| {
            self.job_mut(id).cost_flags = flags;
            self.touched(id);
            self.reevaluate_job_policy(id);
        });
        let result = self.traced(Some(id), || format!("SetCostFlags(0x{flags:X})"), result);
        self.schedule();
        result
    }

    /// GetProperty(BITS_JOB_PROPERTY_ID_COST_FLAGS).
    pub fn cost_flags(&self, id: JobId) -> ApiResult<u32> {
        let job = self.find(id)?;
        if self.profile.unsupported.contains(&Method::SetCostFlags) {
            return Err(self.profile.codes.not_implemented);
        }
        Ok(job.cost_flags)
    }

    // ----- getters (never traced) ------------------------------------------------

    /// GetState: S_OK in every state, final ones included (ref: bits-spec §1.1 [TEST]).
    pub fn state(&self, id: JobId) -> ApiResult<JobState> {
        Ok(self.find(id)?.state)
    }

    /// GetProgress (ref: bits-spec §7.1).
    pub fn progress(&self, id: JobId) -> ApiResult<JobProgress> {
        Ok(self.find(id)?.progress())
    }

    /// IBackgroundCopyFile::GetProgress for file `index`.
    pub fn file_progress(&self, id: JobId, index: usize) -> ApiResult<FileProgress> {
        let f = self.find(id)?.files.get(index).ok_or(Hresult::BG_E_FILE_NOT_FOUND)?;
        Ok(FileProgress {
            bytes_total: f.bytes_total.unwrap_or(BG_SIZE_UNKNOWN),
            bytes_transferred: f.bytes_transferred,
            completed: f.completed,
        })
    }

    /// IBackgroundCopyFile::GetRemoteName / GetLocalName.
    pub fn file_names(&self, id: JobId, index: usize) -> ApiResult<(String, String)> {
        let f = self.find(id)?.files.get(index).ok_or(Hresult::BG_E_FILE_NOT_FOUND)?;
        Ok((f.remote_name.clone(), f.local_name.clone()))
    }

    /// GetTimes (ref: bits-spec §7.1).
    pub fn times(&self, id: JobId) -> ApiResult<JobTimes> {
        let j = self.find(id)?;
        Ok(JobTimes {
            creation: j.creation,
            modification: j.modification,
            transfer_completion: j.transfer_completion,
        })
    }

    /// GetError: only in ERROR / TRANSIENT_ERROR, else BG_E_ERROR_INFORMATION_UNAVAILABLE
    /// (ref: bits-spec §2.2).
    pub fn error(&self, id: JobId) -> ApiResult<JobError> {
        let unavailable = self.profile.codes.error_information_unavailable;
        self.guard(id, Method::GetError)?.error.ok_or(unavailable)
    }

    /// IBackgroundCopyError::GetFile: BG_E_FILE_NOT_AVAILABLE when the error is not tied
    /// to a file (ref: bits-spec §2.2).
    pub fn error_file(&self, id: JobId) -> ApiResult<usize> {
        self.error(id)?.file.ok_or(self.profile.codes.file_not_available)
    }

    /// GetErrorCount: never reset (ref: bits-spec §3.4).
    pub fn error_count(&self, id: JobId) -> ApiResult<u32> {
        Ok(self.guard(id, Method::GetErrorCount)?.error_count)
    }

    pub fn priority(&self, id: JobId) -> ApiResult<JobPriority> {
        Ok(self.find(id)?.priority)
    }

    pub fn job_type(&self, id: JobId) -> ApiResult<JobType> {
        Ok(self.find(id)?.job_type)
    }

    pub fn owner(&self, id: JobId) -> ApiResult<UserId> {
        Ok(self.find(id)?.owner)
    }

    pub fn display_name(&self, id: JobId) -> ApiResult<String> {
        Ok(self.find(id)?.display_name.clone())
    }

    pub fn description(&self, id: JobId) -> ApiResult<String> {
        Ok(self.find(id)?.description.clone())
    }

    pub fn notify_flags(&self, id: JobId) -> ApiResult<NotifyFlags> {
        Ok(self.find(id)?.notify_flags)
    }

    /// GetNotifyInterface: S_OK with NULL when none (ref: bits-spec §1.2).
    pub fn notify_interface(&self, id: JobId) -> ApiResult<Option<Callback>> {
        Ok(self.find(id)?.callback)
    }

    pub fn notify_cmdline(&self, id: JobId) -> ApiResult<Option<(String, String)>> {
        Ok(self.find(id)?.cmdline.clone())
    }

    /// GetNotifyCmdLine as the API answers it: the flavor must have the method
    /// (DO: no IBackgroundCopyJob2 command line, ref: bits-spec §8.1).
    pub fn notify_cmdline_checked(&self, id: JobId) -> ApiResult<Option<(String, String)>> {
        let job = self.find(id)?;
        if !self.profile.supports_cmdline {
            return Err(self.profile.codes.not_implemented);
        }
        Ok(job.cmdline.clone())
    }

    pub fn minimum_retry_delay(&self, id: JobId) -> ApiResult<u32> {
        Ok(self.find(id)?.min_retry_delay.as_secs() as u32)
    }

    pub fn no_progress_timeout(&self, id: JobId) -> ApiResult<u32> {
        Ok(self.find(id)?.no_progress_timeout.as_secs() as u32)
    }

    pub fn maximum_download_time(&self, id: JobId) -> ApiResult<u32> {
        Ok(self.find(id)?.max_download_time.as_secs() as u32)
    }

    pub fn file_count(&self, id: JobId) -> ApiResult<usize> {
        Ok(self.find(id)?.files.len())
    }

    /// GetReplyProgress: E_NOTIMPL except for upload-reply jobs; BytesTotal is
    /// BG_SIZE_UNKNOWN until the reply starts (ref: bits-spec §6.3), i.e. while the
    /// upload is not done: apps tell an upload failure from a reply failure by it, so a
    /// reply that fails before its size is known reads 0 (ref: bits-spec §2.2).
    pub fn reply_progress(&self, id: JobId) -> ApiResult<ReplyProgress> {
        let job = self.guard(id, Method::GetReplyProgress)?;
        if job.job_type != JobType::UploadReply {
            return Err(Hresult::E_NOTIMPL);
        }
        let started = job.reply.upload_done.then_some(0);
        Ok(ReplyProgress {
            bytes_total: job.reply.bytes_total.or(started).unwrap_or(BG_SIZE_UNKNOWN),
            bytes_transferred: job.reply.bytes_transferred,
        })
    }

    /// GetReplyFileName: the name set, or `None` (BITS then generates one).
    pub fn reply_file_name(&self, id: JobId) -> ApiResult<Option<String>> {
        let job = self.guard(id, Method::GetReplyFileName)?;
        if job.job_type != JobType::UploadReply {
            return Err(Hresult::E_NOTIMPL);
        }
        Ok(job.reply.file_name.clone())
    }

    /// GetReplyData: the reply's length. E_NOTIMPL for other job types (checked first),
    /// BG_E_INVALID_STATE before TRANSFERRED, BG_E_TOO_LARGE above 1 MB (ref: bits-spec §6.3).
    pub fn reply_data_len(&self, id: JobId) -> ApiResult<u64> {
        let job = self.find(id)?;
        if self.profile.unsupported.contains(&Method::GetReplyData) || job.job_type != JobType::UploadReply {
            return Err(self.profile.codes.not_implemented);
        }
        let job = self.guard(id, Method::GetReplyData)?;
        let len = job.reply.bytes_total.unwrap_or(0);
        if len > self.profile.limits.reply_data_bytes {
            return Err(Hresult::BG_E_TOO_LARGE);
        }
        Ok(len)
    }

    /// Runs one [`ApiCall`]; the generic entry point for scenario runners and tests.
    pub fn call(&mut self, now: Time, call: &ApiCall) -> ApiReply {
        use ApiCall::*;
        fn unit(r: ApiResult<()>) -> ApiReply {
            r.map_or_else(ApiReply::err, |_| ApiReply::ok(ApiValue::None))
        }
        fn code(r: ApiResult<Hresult>) -> ApiReply {
            r.map_or_else(ApiReply::err, |hr| ApiReply {
                hresult: hr,
                value: ApiValue::None,
            })
        }
        fn val<T>(r: ApiResult<T>, f: impl FnOnce(T) -> ApiValue) -> ApiReply {
            r.map_or_else(ApiReply::err, |v| ApiReply::ok(f(v)))
        }
        self.advance(now);
        match call {
            CreateJob {
                user,
                display_name,
                job_type,
            } => val(self.create_job(now, *user, display_name, *job_type), ApiValue::Job),
            GetJob { user, job } => val(self.get_job(*user, *job), ApiValue::Job),
            EnumJobs { user } => ApiReply::ok(ApiValue::Jobs(self.enum_jobs(*user))),
            AddFile {
                job,
                remote_name,
                local_name,
            } => unit(self.add_file(now, *job, remote_name, local_name)),
            AddFileSet { job, files } => {
                let files: Vec<(&str, &str)> = files.iter().map(|(r, l)| (r.as_str(), l.as_str())).collect();
                unit(self.add_file_set(now, *job, &files))
            }
            Resume { job } => unit(self.resume(now, *job)),
            Suspend { job } => unit(self.suspend(now, *job)),
            Cancel { job } => code(self.cancel(now, *job)),
            Complete { job } => code(self.complete(now, *job)),
            SetDisplayName { job, name } => unit(self.set_display_name(now, *job, name)),
            SetDescription { job, text } => unit(self.set_description(now, *job, text)),
            SetPriority { job, priority } => unit(self.set_priority(now, *job, *priority)),
            SetNotifyFlags { job, flags } => unit(self.set_notify_flags(now, *job, *flags)),
            SetNotifyInterface { job, callback } => unit(self.set_notify_interface(now, *job, *callback)),
            SetNotifyCmdLine {
                job,
                program,
                parameters,
            } => unit(self.set_notify_cmdline(now, *job, program.as_deref(), parameters.as_deref())),
            SetMinimumRetryDelay { job, seconds } => unit(self.set_minimum_retry_delay(now, *job, *seconds)),
            SetNoProgressTimeout { job, seconds } => unit(self.set_no_progress_timeout(now, *job, *seconds)),
            SetMaximumDownloadTime { job, seconds } => unit(self.set_maximum_download_time(now, *job, *seconds)),
            SetReplyFileName { job, path } => unit(self.set_reply_file_name(now, *job, path.as_deref())),
            TakeOwnership { job, user } => unit(self.take_ownership(now, *job, *user)),
            GetState { job } => val(self.state(*job), ApiValue::State),
            GetProgress { job } => val(self.progress(*job), ApiValue::Progress),
            GetFileProgress { job, file } => val(self.file_progress(*job, *file), ApiValue::FileProgress),
            GetTimes { job } => val(self.times(*job), ApiValue::Times),
            GetError { job } => val(self.error(*job), |e| ApiValue::Error {
                hresult: e.hresult,
                context: e.context,
                file: e.file,
            }),
            GetErrorCount { job } => val(self.error_count(*job), ApiValue::Count),
            GetPriority { job } => val(self.priority(*job), ApiValue::Priority),
            GetNotifyFlags { job } => val(self.notify_flags(*job), |f| ApiValue::Count(f.0)),
            GetMinimumRetryDelay { job } => val(self.minimum_retry_delay(*job), ApiValue::Count),
            GetNoProgressTimeout { job } => val(self.no_progress_timeout(*job), ApiValue::Count),
            GetReplyProgress { job } => val(self.reply_progress(*job), ApiValue::ReplyProgress),
            GetReplyData { job } => val(self.reply_data_len(*job), ApiValue::Bytes),
            GetNotifyInterface { job } => val(self.notify_interface(*job), ApiValue::Callback),
            GetNotifyCmdLine { job } => val(self.notify_cmdline_checked(*job), ApiValue::CmdLine),
            GetOwner { job } => val(self.owner(*job), ApiValue::User),
            SetCostFlags { job, flags } => unit(self.set_cost_flags(now, *job, *flags)),
            SetCredentials { job, credential } => unit(self.set_credentials(now, *job, credential.clone())),
            RemoveCredentials { job, target, scheme } => code(self.remove_credentials(now, *job, *target, *scheme)),
            GetCostFlags { job } => val(self.cost_flags(*job), ApiValue::Count),
        }
    }
}

/// Remote names: http(s), file:// or a local / UNC path, ≤ 2,200 characters
/// (ref: bits-spec §7.3; plain paths and file:// are accepted [TEST]).
fn valid_remote(remote: &str, max: usize) -> bool {
    let lower = remote.to_ascii_lowercase();
    let scheme_ok = ["http://", "https://", "file://"].iter().any(|s| lower.starts_with(s)) || is_absolute_path(remote);
    // A URL's `?` starts its query string, which BITS keeps and forwards (ref: bits-http
    // §3.8); only the path part is checked for wildcards (ref: bits-spec §7.3).
    let is_url = lower.starts_with("http://") || lower.starts_with("https://");
    let path = if is_url {
        remote.split('?').next().unwrap_or(remote)
    } else {
        remote
    };
    scheme_ok && remote.chars().count() <= max && !path.contains(['*', '?'].as_slice())
}

/// Local names: a full path ≤ MAX_PATH, no wildcards (ref: bits-spec §7.3).
fn valid_local(local: &str, max_path: usize) -> bool {
    is_absolute_path(local) && local.chars().count() <= max_path && !local.contains(['*', '?'].as_slice())
}

fn is_absolute_path(p: &str) -> bool {
    let b = p.as_bytes();
    (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/'))
        || p.starts_with("\\\\")
        || p.starts_with('/')
}

/// The reply file BITS names when the client set none: "If BITS generates the file
/// name, the reply file is written to the same directory as the local upload file"
/// (ref: IBackgroundCopyJob2::SetReplyFileName, Remarks). The name itself is not
/// documented: `reply-jN.bin` (decision, docs/decisions.md).
fn generated_reply_file(upload_local: &str, id: JobId) -> String {
    let dir_len = upload_local.rfind(['/', '\\']).map_or(0, |i| i + 1);
    format!("{}reply-{id}.bin", &upload_local[..dir_len])
}

/// The job type a client passed to CreateJob, as a raw `BG_JOB_TYPE` value. A value
/// outside the enumeration is E_INVALIDARG: CreateJob's page documents E_INVALIDARG
/// for its invalid arguments (a display name too long) and nothing for the type
/// (decision, docs/decisions.md "COM facade").
pub fn job_type_from_windows(value: u32) -> Result<JobType, Hresult> {
    JobType::from_value(value).ok_or(Hresult::E_INVALIDARG)
}

/// Whose jobs `EnumJobs(dwFlags)` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnumScope {
    /// 0: the caller's own jobs.
    CurrentUser,
    /// `BG_JOB_ENUM_ALL_USERS` (1): every user's (needs administrator rights).
    AllUsers,
}

/// `EnumJobs`' flags: 0 or `BG_JOB_ENUM_ALL_USERS` (ref: IBackgroundCopyManager::EnumJobs,
/// dwFlags). Any other value is E_INVALIDARG: the page names no code for it
/// (decision, docs/decisions.md "COM facade").
pub fn enum_jobs_scope(flags: u32) -> Result<EnumScope, Hresult> {
    const BG_JOB_ENUM_ALL_USERS: u32 = 0x1;
    match flags {
        0 => Ok(EnumScope::CurrentUser),
        BG_JOB_ENUM_ALL_USERS => Ok(EnumScope::AllUsers),
        _ => Err(Hresult::E_INVALIDARG),
    }
}

/// One API call, for runners that drive the model generically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call")]
pub enum ApiCall {
    CreateJob {
        user: UserId,
        display_name: String,
        job_type: JobType,
    },
    GetJob {
        user: UserId,
        job: JobId,
    },
    EnumJobs {
        user: UserId,
    },
    AddFile {
        job: JobId,
        remote_name: String,
        local_name: String,
    },
    AddFileSet {
        job: JobId,
        files: Vec<(String, String)>,
    },
    Resume {
        job: JobId,
    },
    Suspend {
        job: JobId,
    },
    Cancel {
        job: JobId,
    },
    Complete {
        job: JobId,
    },
    SetDisplayName {
        job: JobId,
        name: String,
    },
    SetDescription {
        job: JobId,
        text: String,
    },
    SetPriority {
        job: JobId,
        priority: u32,
    },
    SetNotifyFlags {
        job: JobId,
        flags: u32,
    },
    SetNotifyInterface {
        job: JobId,
        callback: Option<Callback>,
    },
    SetNotifyCmdLine {
        job: JobId,
        program: Option<String>,
        parameters: Option<String>,
    },
    SetMinimumRetryDelay {
        job: JobId,
        seconds: u32,
    },
    SetNoProgressTimeout {
        job: JobId,
        seconds: u32,
    },
    SetMaximumDownloadTime {
        job: JobId,
        seconds: u32,
    },
    SetReplyFileName {
        job: JobId,
        path: Option<String>,
    },
    TakeOwnership {
        job: JobId,
        user: UserId,
    },
    GetState {
        job: JobId,
    },
    GetProgress {
        job: JobId,
    },
    GetFileProgress {
        job: JobId,
        file: usize,
    },
    GetTimes {
        job: JobId,
    },
    GetError {
        job: JobId,
    },
    GetErrorCount {
        job: JobId,
    },
    GetPriority {
        job: JobId,
    },
    GetNotifyFlags {
        job: JobId,
    },
    GetMinimumRetryDelay {
        job: JobId,
    },
    GetNoProgressTimeout {
        job: JobId,
    },
    GetReplyProgress {
        job: JobId,
    },
    GetReplyData {
        job: JobId,
    },
    /// IBackgroundCopyJob::GetNotifyInterface.
    GetNotifyInterface {
        job: JobId,
    },
    /// IBackgroundCopyJob2::GetNotifyCmdLine.
    GetNotifyCmdLine {
        job: JobId,
    },
    /// IBackgroundCopyJob::GetOwner.
    GetOwner {
        job: JobId,
    },
    /// IBackgroundCopyJob5::SetProperty(BITS_JOB_PROPERTY_ID_COST_FLAGS).
    SetCostFlags {
        job: JobId,
        flags: u32,
    },
    /// IBackgroundCopyJob5::GetProperty(BITS_JOB_PROPERTY_ID_COST_FLAGS).
    GetCostFlags {
        job: JobId,
    },
    /// IBackgroundCopyJob2::SetCredentials.
    SetCredentials {
        job: JobId,
        credential: crate::credentials::Credential,
    },
    /// IBackgroundCopyJob2::RemoveCredentials.
    RemoveCredentials {
        job: JobId,
        target: crate::credentials::AuthTarget,
        scheme: crate::credentials::AuthScheme,
    },
}

/// What a call returned: its HRESULT and, on success, a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiReply {
    pub hresult: Hresult,
    pub value: ApiValue,
}

impl ApiReply {
    pub fn ok(value: ApiValue) -> ApiReply {
        ApiReply {
            hresult: Hresult::S_OK,
            value,
        }
    }
    pub fn err(hresult: Hresult) -> ApiReply {
        ApiReply {
            hresult,
            value: ApiValue::None,
        }
    }
}

/// The value part of an [`ApiReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiValue {
    None,
    Job(JobId),
    Jobs(Vec<JobId>),
    State(JobState),
    Progress(JobProgress),
    FileProgress(FileProgress),
    Times(JobTimes),
    Error {
        hresult: Hresult,
        context: ErrorContext,
        file: Option<usize>,
    },
    Count(u32),
    Priority(JobPriority),
    ReplyProgress(ReplyProgress),
    Bytes(u64),
    /// GetNotifyInterface: the registered callback, `None` for NULL.
    Callback(Option<Callback>),
    /// GetNotifyCmdLine: (program, parameters), `None` when no command line is set.
    CmdLine(Option<(String, String)>),
    /// GetOwner: the owning user.
    User(UserId),
}

#[cfg(test)]
mod windows_argument_tests {
    use super::*;

    #[test]
    fn job_types_and_enum_flags_outside_their_enumerations_are_invalid_arguments() {
        assert_eq!(job_type_from_windows(2), Ok(JobType::UploadReply));
        assert_eq!(job_type_from_windows(3), Err(Hresult::E_INVALIDARG));
        assert_eq!(enum_jobs_scope(0), Ok(EnumScope::CurrentUser));
        assert_eq!(enum_jobs_scope(1), Ok(EnumScope::AllUsers));
        assert_eq!(enum_jobs_scope(2), Err(Hresult::E_INVALIDARG));
    }
}
