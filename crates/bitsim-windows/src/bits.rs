//! A safe layer over the BITS COM API (IBackgroundCopyManager, IBackgroundCopyJob
//! and the IBackgroundCopyJob2/3/4 extensions).
//!
//! Every method calls the vtable directly and returns the raw HRESULT
//! ([`Hr`]), success codes included; getters return an [`Outcome`] (HRESULT
//! plus the value on success). Nothing here interprets BITS behaviour: that is
//! the model's job; this layer only records what the service said.

use std::ffi::c_void;
use std::ptr::null_mut;

use windows::Win32::Foundation::FILETIME;
use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    BackgroundCopyManager, IBackgroundCopyError, IBackgroundCopyFile, IBackgroundCopyJob, IBackgroundCopyJob2,
    IBackgroundCopyJob3, IBackgroundCopyJob4, IBackgroundCopyJob5, IBackgroundCopyManager, IEnumBackgroundCopyFiles,
    IEnumBackgroundCopyJobs, BG_ERROR_CONTEXT, BG_FILE_INFO, BG_FILE_PROGRESS, BG_JOB_PRIORITY, BG_JOB_PROGRESS,
    BG_JOB_REPLY_PROGRESS, BG_JOB_STATE, BG_JOB_TIMES, BG_JOB_TYPE,
};
use windows::Win32::System::Com::{CoCreateInstance, CoTaskMemFree, CLSCTX_LOCAL_SERVER};
use windows_core::{Interface, GUID, HRESULT, PCWSTR, PWSTR};

use crate::callback::CallbackRecorder;
use crate::com::{take_pwstr, vcall, Wide};
use crate::hr::{Hr, Outcome};
use crate::types::{
    ErrorContext, FileInfo, FileProgress, JobErrorInfo, JobGuid, JobPriority, JobProgress, JobState, JobTimes, JobType,
    ReplyProgress,
};

/// Every job this crate creates has a display name starting with this, so
/// leftovers can be found and swept (see [`crate::guard::sweep`]).
pub const DISPLAY_NAME_PREFIX: &str = "bitsim-";

/// `display_name` with [`DISPLAY_NAME_PREFIX`] in front (unless it already
/// starts with it).
pub fn prefixed_display_name(display_name: &str) -> String {
    if display_name.starts_with(DISPLAY_NAME_PREFIX) {
        display_name.to_owned()
    } else {
        format!("{DISPLAY_NAME_PREFIX}{display_name}")
    }
}

/// Wrap an interface pointer returned through an out-parameter (owning it).
///
/// # Safety
/// `p` is null or an owned reference to a `T`.
unsafe fn take_iface<T: Interface>(p: *mut c_void) -> Option<T> {
    if p.is_null() {
        None
    } else {
        // SAFETY: per the contract above.
        Some(unsafe { T::from_raw(p) })
    }
}

/// Out-pointer on success, or E_POINTER if a successful call returned NULL.
fn owned<T: Interface>(hr: Hr, p: *mut c_void) -> Outcome<T> {
    if hr.is_failure() {
        return Outcome::failure(hr);
    }
    // SAFETY: a successful COM getter hands us one reference.
    match unsafe { take_iface::<T>(p) } {
        Some(t) => Outcome::success(hr, t),
        None => Outcome::failure(Hr::E_POINTER),
    }
}

fn filetime(ft: FILETIME) -> u64 {
    (u64::from(ft.dwHighDateTime) << 32) | u64::from(ft.dwLowDateTime)
}

/// The BITS job manager: `CoCreateInstance(BackgroundCopyManager,
/// CLSCTX_LOCAL_SERVER)`.
#[derive(Clone)]
pub struct BitsManager {
    mgr: IBackgroundCopyManager,
}

// SAFETY: the manager is a proxy to the out-of-process BITS service created in
// the MTA; MTA proxies may be called from any MTA thread (see ComApartment).
unsafe impl Send for BitsManager {}
// SAFETY: as above; all methods take &self and COM serialises nothing here.
unsafe impl Sync for BitsManager {}

impl BitsManager {
    /// Connect to the BITS service. Needs COM initialised in the MTA
    /// ([`crate::ComApartment`]). Typical failures:
    /// 0x80070422 (ERROR_SERVICE_DISABLED), 0x800704DD (ERROR_NOT_LOGGED_ON:
    /// no interactive logon session, see docs/conformance.md).
    pub fn connect() -> Result<BitsManager, Hr> {
        // SAFETY: plain COM activation; the result is an owned interface.
        let mgr: IBackgroundCopyManager =
            unsafe { CoCreateInstance(&BackgroundCopyManager, None, CLSCTX_LOCAL_SERVER) }.map_err(Hr::from)?;
        Ok(BitsManager { mgr })
    }

    /// Connect to Delivery Optimization's BITS-compatible API: the same
    /// `IBackgroundCopyManager` from DO's class (ref: Delivery Optimization
    /// IBackgroundCopyManager, Microsoft Learn: `CoCreateInstance(
    /// CLSID_DeliveryOptimization, …, IID_IBackgroundCopyManager)`). Where DO is
    /// not registered (before Windows 10 1709, under Wine): REGDB_E_CLASSNOTREG.
    pub fn connect_delivery_optimization() -> Result<BitsManager, Hr> {
        let clsid = crate::delivery_optimization::CLSID_DELIVERY_OPTIMIZATION;
        // SAFETY: plain COM activation; the result is an owned interface.
        let mgr: IBackgroundCopyManager =
            unsafe { CoCreateInstance(&clsid, None, CLSCTX_LOCAL_SERVER) }.map_err(Hr::from)?;
        Ok(BitsManager { mgr })
    }

    /// `CreateJob`. The display name gets the [`DISPLAY_NAME_PREFIX`].
    /// Callers should wrap the job in a [`crate::JobGuard`] at once.
    pub fn create_job(&self, display_name: &str, job_type: JobType) -> Outcome<BitsJob> {
        let name = Wide::new(&prefixed_display_name(display_name));
        let mut id = GUID::zeroed();
        let mut pjob: *mut c_void = null_mut();
        // SAFETY: arguments match IBackgroundCopyManager::CreateJob.
        let hr = unsafe {
            vcall!(
                &self.mgr,
                CreateJob,
                name.pcwstr(),
                BG_JOB_TYPE(job_type.raw() as i32),
                &mut id,
                &mut pjob
            )
        };
        owned::<IBackgroundCopyJob>(hr, pjob).map(|job| BitsJob::from_job(job, id.into()))
    }

    /// `GetJob(id)`.
    pub fn get_job(&self, id: JobGuid) -> Outcome<BitsJob> {
        let guid: GUID = id.into();
        let mut pjob: *mut c_void = null_mut();
        // SAFETY: arguments match IBackgroundCopyManager::GetJob.
        let hr = unsafe { vcall!(&self.mgr, GetJob, &guid, &mut pjob) };
        owned::<IBackgroundCopyJob>(hr, pjob).map(|job| BitsJob::from_job(job, id))
    }

    /// `EnumJobs(flags)`: the caller's jobs (flags 0) or every user's
    /// (`BG_JOB_ENUM_ALL_USERS` = 1, admin only).
    pub fn enum_jobs(&self, all_users: bool) -> Outcome<Vec<BitsJob>> {
        let mut penum: *mut c_void = null_mut();
        // SAFETY: arguments match IBackgroundCopyManager::EnumJobs.
        let hr = unsafe { vcall!(&self.mgr, EnumJobs, u32::from(all_users), &mut penum) };
        let en = match owned::<IEnumBackgroundCopyJobs>(hr, penum).ok() {
            Ok(en) => en,
            Err(hr) => return Outcome::failure(hr),
        };
        let mut jobs = Vec::new();
        loop {
            let mut p: *mut c_void = null_mut();
            let mut fetched = 0u32;
            // SAFETY: one element requested into `p`.
            let next = unsafe { vcall!(&en, Next, 1, &mut p, &mut fetched) };
            if next.is_failure() {
                return Outcome::failure(next);
            }
            if fetched == 0 {
                break;
            }
            // SAFETY: Next returned one owned job.
            if let Some(job) = unsafe { take_iface::<IBackgroundCopyJob>(p) } {
                // SAFETY: plain getter.
                let id = unsafe { job.GetId() }.map(JobGuid::from).unwrap_or(JobGuid(0));
                jobs.push(BitsJob::from_job(job, id));
            }
            if next == Hr::S_FALSE {
                break;
            }
        }
        Outcome::success(hr, jobs)
    }
}

/// One BITS job: IBackgroundCopyJob, plus Job2/3/4 when the service has them
/// (methods of a missing interface return E_NOINTERFACE).
///
/// Dropping a `BitsJob` only releases the reference; the job lives on in the
/// service. Use [`crate::JobGuard`] to cancel on drop.
#[derive(Clone)]
pub struct BitsJob {
    id: JobGuid,
    job: IBackgroundCopyJob,
    job2: Option<IBackgroundCopyJob2>,
    job3: Option<IBackgroundCopyJob3>,
    job4: Option<IBackgroundCopyJob4>,
}

// SAFETY: see BitsManager: MTA proxies to the BITS service.
unsafe impl Send for BitsJob {}
// SAFETY: as above.
unsafe impl Sync for BitsJob {}

impl std::fmt::Debug for BitsJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitsJob")
            .field("id", &self.id)
            .field("job2", &self.job2.is_some())
            .field("job3", &self.job3.is_some())
            .field("job4", &self.job4.is_some())
            .finish()
    }
}

impl BitsJob {
    fn from_job(job: IBackgroundCopyJob, id: JobGuid) -> BitsJob {
        BitsJob {
            id,
            job2: job.cast().ok(),
            job3: job.cast().ok(),
            job4: job.cast().ok(),
            job,
        }
    }

    /// The job's GUID (from CreateJob / GetJob / GetId).
    pub fn id(&self) -> JobGuid {
        self.id
    }

    /// Which extension interfaces QueryInterface gave: (Job2, Job3, Job4).
    pub fn interfaces(&self) -> (bool, bool, bool) {
        (self.job2.is_some(), self.job3.is_some(), self.job4.is_some())
    }

    // ---- control -------------------------------------------------------

    /// `AddFile(remote_url, local_name)`.
    pub fn add_file(&self, remote_url: &str, local_name: &str) -> Hr {
        let (r, l) = (Wide::new(remote_url), Wide::new(local_name));
        // SAFETY: two valid null-terminated strings.
        unsafe { vcall!(&self.job, AddFile, r.pcwstr(), l.pcwstr()) }
    }

    /// `AddFileSet(files)`: (remote URL, local name) pairs, added atomically.
    pub fn add_file_set(&self, files: &[(&str, &str)]) -> Hr {
        let Ok(count) = u32::try_from(files.len()) else {
            return Hr::E_INVALIDARG;
        };
        let wides: Vec<(Wide, Wide)> = files.iter().map(|(r, l)| (Wide::new(r), Wide::new(l))).collect();
        let infos: Vec<BG_FILE_INFO> = wides
            .iter()
            .map(|(r, l)| BG_FILE_INFO {
                RemoteName: PWSTR(r.pcwstr().0 as *mut u16),
                LocalName: PWSTR(l.pcwstr().0 as *mut u16),
            })
            .collect();
        // SAFETY: `count` entries of valid strings that outlive the call (BITS
        // only reads them; the PWSTR type is the SDK's, not a write licence).
        unsafe { vcall!(&self.job, AddFileSet, count, infos.as_ptr()) }
    }

    /// `Resume()`.
    pub fn resume(&self) -> Hr {
        // SAFETY: no arguments.
        unsafe { vcall!(&self.job, Resume) }
    }

    /// `Suspend()`.
    pub fn suspend(&self) -> Hr {
        // SAFETY: no arguments.
        unsafe { vcall!(&self.job, Suspend) }
    }

    /// `Cancel()`; may return the success code BG_S_UNABLE_TO_DELETE_FILES.
    pub fn cancel(&self) -> Hr {
        // SAFETY: no arguments.
        unsafe { vcall!(&self.job, Cancel) }
    }

    /// `Complete()`; may return the success codes BG_S_PARTIAL_COMPLETE and
    /// BG_S_UNABLE_TO_DELETE_FILES.
    pub fn complete(&self) -> Hr {
        // SAFETY: no arguments.
        unsafe { vcall!(&self.job, Complete) }
    }

    // ---- state, progress, errors -----------------------------------------

    /// `GetState()`.
    pub fn get_state(&self) -> Outcome<JobState> {
        let mut st = BG_JOB_STATE(-1);
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(&self.job, GetState, &mut st) };
        Outcome::from_call(hr, || JobState::from_raw(st.0 as u32))
    }

    /// `GetType()`.
    pub fn get_type(&self) -> Outcome<JobType> {
        let mut t = BG_JOB_TYPE(-1);
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(&self.job, GetType, &mut t) };
        Outcome::from_call(hr, || JobType::from_raw(t.0 as u32))
    }

    /// `GetProgress()`.
    pub fn get_progress(&self) -> Outcome<JobProgress> {
        let mut p = BG_JOB_PROGRESS::default();
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(&self.job, GetProgress, &mut p) };
        Outcome::from_call(hr, || JobProgress {
            bytes_total: p.BytesTotal,
            bytes_transferred: p.BytesTransferred,
            files_total: p.FilesTotal,
            files_transferred: p.FilesTransferred,
        })
    }

    /// `GetTimes()` (raw FILETIMEs).
    pub fn get_times(&self) -> Outcome<JobTimes> {
        let mut t = BG_JOB_TIMES::default();
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(&self.job, GetTimes, &mut t) };
        Outcome::from_call(hr, || JobTimes {
            creation: filetime(t.CreationTime),
            modification: filetime(t.ModificationTime),
            transfer_completion: filetime(t.TransferCompletionTime),
        })
    }

    /// `GetError()` then `IBackgroundCopyError::GetError` (context and code)
    /// and `GetFile`. The outcome's HRESULT is the first failing call's
    /// (e.g. BG_E_ERROR_INFORMATION_UNAVAILABLE when there is no error).
    pub fn get_error(&self) -> Outcome<JobErrorInfo> {
        let mut perr: *mut c_void = null_mut();
        // SAFETY: out-parameter for one interface pointer.
        let hr = unsafe { vcall!(&self.job, GetError, &mut perr) };
        match owned::<IBackgroundCopyError>(hr, perr).ok() {
            Ok(err) => error_info(&err),
            Err(hr) => Outcome::failure(hr),
        }
    }

    /// `GetErrorCount()`.
    pub fn get_error_count(&self) -> Outcome<u32> {
        let mut n = 0u32;
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(&self.job, GetErrorCount, &mut n) };
        Outcome::from_call(hr, || n)
    }

    /// `EnumFiles()` with each file's names and progress.
    pub fn get_files(&self) -> Outcome<Vec<FileInfo>> {
        let mut penum: *mut c_void = null_mut();
        // SAFETY: out-parameter for one interface pointer.
        let hr = unsafe { vcall!(&self.job, EnumFiles, &mut penum) };
        let en = match owned::<IEnumBackgroundCopyFiles>(hr, penum).ok() {
            Ok(en) => en,
            Err(hr) => return Outcome::failure(hr),
        };
        let mut files = Vec::new();
        loop {
            let mut p: *mut c_void = null_mut();
            let mut fetched = 0u32;
            // SAFETY: one element requested into `p`.
            let next = unsafe { vcall!(&en, Next, 1, &mut p, &mut fetched) };
            if next.is_failure() {
                return Outcome::failure(next);
            }
            if fetched == 0 {
                break;
            }
            // SAFETY: Next returned one owned file.
            if let Some(f) = unsafe { take_iface::<IBackgroundCopyFile>(p) } {
                files.push(file_info(&f));
            }
            if next == Hr::S_FALSE {
                break;
            }
        }
        Outcome::success(hr, files)
    }

    /// `GetDisplayName()`.
    pub fn get_display_name(&self) -> Outcome<String> {
        let mut p = PWSTR::null();
        // SAFETY: out-parameter; the string is ours to free.
        let hr = unsafe { vcall!(&self.job, GetDisplayName, &mut p) };
        // SAFETY: CoTaskMemAlloc'd string from a successful getter.
        Outcome::from_call(hr, || unsafe { take_pwstr(p) }.unwrap_or_default())
    }

    /// `SetDisplayName(name)`, keeping the [`DISPLAY_NAME_PREFIX`] (so a
    /// renamed job can still be swept).
    pub fn set_display_name(&self, name: &str) -> Hr {
        let w = Wide::new(&prefixed_display_name(name));
        // SAFETY: valid null-terminated string.
        unsafe { vcall!(&self.job, SetDisplayName, w.pcwstr()) }
    }

    /// `SetDescription(text)`.
    pub fn set_description(&self, text: &str) -> Hr {
        let w = Wide::new(text);
        // SAFETY: valid null-terminated string.
        unsafe { vcall!(&self.job, SetDescription, w.pcwstr()) }
    }

    // ---- settings ----------------------------------------------------------

    /// `SetPriority()`.
    pub fn set_priority(&self, priority: JobPriority) -> Hr {
        // SAFETY: by-value enum.
        unsafe { vcall!(&self.job, SetPriority, BG_JOB_PRIORITY(priority.raw() as i32)) }
    }

    /// `GetPriority()`.
    pub fn get_priority(&self) -> Outcome<JobPriority> {
        let mut p = BG_JOB_PRIORITY(-1);
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(&self.job, GetPriority, &mut p) };
        Outcome::from_call(hr, || JobPriority::from_raw(p.0 as u32))
    }

    /// `SetNotifyFlags()` (`crate::types::notify::*`).
    pub fn set_notify_flags(&self, flags: u32) -> Hr {
        // SAFETY: by-value u32.
        unsafe { vcall!(&self.job, SetNotifyFlags, flags) }
    }

    /// `GetNotifyFlags()`.
    pub fn get_notify_flags(&self) -> Outcome<u32> {
        let mut f = 0u32;
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(&self.job, GetNotifyFlags, &mut f) };
        Outcome::from_call(hr, || f)
    }

    /// `SetNotifyInterface(recorder)`, or NULL to clear it.
    pub fn set_notify_interface(&self, recorder: Option<&CallbackRecorder>) -> Hr {
        let raw = recorder.map_or(null_mut(), |r| r.interface().as_raw());
        // SAFETY: `raw` is NULL or a live IBackgroundCopyCallback (BITS
        // AddRefs what it keeps).
        unsafe { vcall!(&self.job, SetNotifyInterface, raw) }
    }

    /// `IBackgroundCopyJob2::SetNotifyCmdLine(program, parameters)`; `None`
    /// passes NULL (NULL program = clear).
    /// `IBackgroundCopyJob2::SetCredentials` with Basic-style credentials
    /// (every scheme's union member is a BG_BASIC_CREDENTIALS).
    pub fn set_credentials(&self, target: u32, scheme: u32, user: Option<&str>, password: Option<&str>) -> Hr {
        use windows::Win32::Networking::BackgroundIntelligentTransferService::{
            BG_AUTH_CREDENTIALS, BG_AUTH_CREDENTIALS_UNION, BG_AUTH_SCHEME, BG_AUTH_TARGET, BG_BASIC_CREDENTIALS,
        };
        let Some(job2) = &self.job2 else {
            return Hr::E_NOINTERFACE;
        };
        let u = user.map(Wide::new);
        let p = password.map(Wide::new);
        let cred = BG_AUTH_CREDENTIALS {
            Target: BG_AUTH_TARGET(target as i32),
            Scheme: BG_AUTH_SCHEME(scheme as i32),
            Credentials: BG_AUTH_CREDENTIALS_UNION {
                Basic: BG_BASIC_CREDENTIALS {
                    UserName: PWSTR(u.as_ref().map_or(PCWSTR::null(), Wide::pcwstr).0 as *mut u16),
                    Password: PWSTR(p.as_ref().map_or(PCWSTR::null(), Wide::pcwstr).0 as *mut u16),
                },
            },
        };
        // SAFETY: the struct and its strings outlive the call; the service only
        // reads them (the PWSTR type is the SDK's, not a write licence).
        unsafe { vcall!(job2, SetCredentials, &cred) }
    }

    /// `IBackgroundCopyJob2::RemoveCredentials`.
    pub fn remove_credentials(&self, target: u32, scheme: u32) -> Hr {
        use windows::Win32::Networking::BackgroundIntelligentTransferService::{BG_AUTH_SCHEME, BG_AUTH_TARGET};
        let Some(job2) = &self.job2 else {
            return Hr::E_NOINTERFACE;
        };
        // SAFETY: plain values.
        unsafe {
            vcall!(
                job2,
                RemoveCredentials,
                BG_AUTH_TARGET(target as i32),
                BG_AUTH_SCHEME(scheme as i32)
            )
        }
    }

    /// `IBackgroundCopyJob5::SetProperty(BITS_JOB_PROPERTY_ID_COST_FLAGS)`;
    /// E_NOINTERFACE where the job has no Job5 (BITS before 5.0, or Wine,
    /// whose proxies do not cover it).
    pub fn set_cost_flags(&self, flags: u32) -> Hr {
        use windows::Win32::Networking::BackgroundIntelligentTransferService::{
            BITS_JOB_PROPERTY_ID_COST_FLAGS, BITS_JOB_PROPERTY_VALUE,
        };
        let Ok(job5) = self.job.cast::<IBackgroundCopyJob5>() else {
            return Hr::E_NOINTERFACE;
        };
        let value = BITS_JOB_PROPERTY_VALUE { Dword: flags };
        // SAFETY: a plain union value that outlives the call.
        unsafe { vcall!(&job5, SetProperty, BITS_JOB_PROPERTY_ID_COST_FLAGS, value) }
    }

    /// `IBackgroundCopyJob5::GetProperty(BITS_JOB_PROPERTY_ID_COST_FLAGS)`.
    pub fn get_cost_flags(&self) -> Outcome<u32> {
        use windows::Win32::Networking::BackgroundIntelligentTransferService::{
            BITS_JOB_PROPERTY_ID_COST_FLAGS, BITS_JOB_PROPERTY_VALUE,
        };
        let Ok(job5) = self.job.cast::<IBackgroundCopyJob5>() else {
            return Outcome::failure(Hr::E_NOINTERFACE);
        };
        let mut value = BITS_JOB_PROPERTY_VALUE { Dword: 0 };
        // SAFETY: an out-parameter of the right type.
        let hr = unsafe { vcall!(&job5, GetProperty, BITS_JOB_PROPERTY_ID_COST_FLAGS, &mut value) };
        // SAFETY: COST_FLAGS is the union's DWORD member.
        Outcome::from_call(hr, || unsafe { value.Dword })
    }

    pub fn set_notify_cmdline(&self, program: Option<&str>, parameters: Option<&str>) -> Hr {
        let Some(job2) = &self.job2 else {
            return Hr::E_NOINTERFACE;
        };
        let p = program.map(Wide::new);
        let a = parameters.map(Wide::new);
        let pp = p.as_ref().map_or(PCWSTR::null(), Wide::pcwstr);
        let pa = a.as_ref().map_or(PCWSTR::null(), Wide::pcwstr);
        // SAFETY: NULL or valid strings that outlive the call.
        unsafe { vcall!(job2, SetNotifyCmdLine, pp, pa) }
    }

    /// `IBackgroundCopyJob2::GetNotifyCmdLine()`: (program, parameters), `None`
    /// when no program is set.
    pub fn get_notify_cmdline(&self) -> Outcome<Option<(String, String)>> {
        let Some(job2) = &self.job2 else {
            return Outcome::failure(Hr::E_NOINTERFACE);
        };
        let mut p = PWSTR::null();
        let mut a = PWSTR::null();
        // SAFETY: out-parameters; the strings are ours to free.
        let hr = unsafe { vcall!(job2, GetNotifyCmdLine, &mut p, &mut a) };
        // SAFETY: CoTaskMemAlloc'd strings (or NULL), freed once here.
        let (program, parameters) = unsafe { (take_pwstr(p), take_pwstr(a)) };
        Outcome::from_call(hr, || {
            program
                .filter(|p| !p.is_empty())
                .map(|p| (p, parameters.unwrap_or_default()))
        })
    }

    /// `GetOwner()`: the owner's SID string.
    pub fn get_owner(&self) -> Outcome<String> {
        let mut p = PWSTR::null();
        // SAFETY: out-parameter; the string is ours to free.
        let hr = unsafe { vcall!(&self.job, GetOwner, &mut p) };
        // SAFETY: CoTaskMemAlloc'd string (or NULL), freed once here.
        let owner = unsafe { take_pwstr(p) };
        Outcome::from_call(hr, || owner.unwrap_or_default())
    }

    /// `GetNotifyInterface()`: whether an interface is registered (the returned
    /// pointer is released at once).
    pub fn has_notify_interface(&self) -> Outcome<bool> {
        let mut p: *mut c_void = null_mut();
        // SAFETY: out-parameter receiving an AddRef'd IUnknown or NULL.
        let hr = unsafe { vcall!(&self.job, GetNotifyInterface, &mut p) };
        let present = !p.is_null();
        if present {
            // SAFETY: an owned reference returned by the getter, released once.
            drop(unsafe { windows_core::IUnknown::from_raw(p) });
        }
        Outcome::from_call(hr, || present)
    }

    /// `SetMinimumRetryDelay(seconds)`.
    pub fn set_minimum_retry_delay(&self, seconds: u32) -> Hr {
        // SAFETY: by-value u32.
        unsafe { vcall!(&self.job, SetMinimumRetryDelay, seconds) }
    }

    /// `GetMinimumRetryDelay()`.
    pub fn get_minimum_retry_delay(&self) -> Outcome<u32> {
        let mut s = 0u32;
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(&self.job, GetMinimumRetryDelay, &mut s) };
        Outcome::from_call(hr, || s)
    }

    /// `SetNoProgressTimeout(seconds)`.
    pub fn set_no_progress_timeout(&self, seconds: u32) -> Hr {
        // SAFETY: by-value u32.
        unsafe { vcall!(&self.job, SetNoProgressTimeout, seconds) }
    }

    /// `GetNoProgressTimeout()`.
    pub fn get_no_progress_timeout(&self) -> Outcome<u32> {
        let mut s = 0u32;
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(&self.job, GetNoProgressTimeout, &mut s) };
        Outcome::from_call(hr, || s)
    }

    /// `IBackgroundCopyJob4::SetMaximumDownloadTime(seconds)`.
    pub fn set_maximum_download_time(&self, seconds: u32) -> Hr {
        let Some(job4) = &self.job4 else {
            return Hr::E_NOINTERFACE;
        };
        // SAFETY: by-value u32.
        unsafe { vcall!(job4, SetMaximumDownloadTime, seconds) }
    }

    /// `IBackgroundCopyJob4::GetMaximumDownloadTime()`.
    pub fn get_maximum_download_time(&self) -> Outcome<u32> {
        let Some(job4) = &self.job4 else {
            return Outcome::failure(Hr::E_NOINTERFACE);
        };
        let mut s = 0u32;
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(job4, GetMaximumDownloadTime, &mut s) };
        Outcome::from_call(hr, || s)
    }

    // ---- upload-reply (IBackgroundCopyJob2) --------------------------------

    /// `IBackgroundCopyJob2::GetReplyProgress()`.
    pub fn get_reply_progress(&self) -> Outcome<ReplyProgress> {
        let Some(job2) = &self.job2 else {
            return Outcome::failure(Hr::E_NOINTERFACE);
        };
        let mut p = BG_JOB_REPLY_PROGRESS::default();
        // SAFETY: out-parameter of the right type.
        let hr = unsafe { vcall!(job2, GetReplyProgress, &mut p) };
        Outcome::from_call(hr, || ReplyProgress {
            bytes_total: p.BytesTotal,
            bytes_transferred: p.BytesTransferred,
        })
    }

    /// `IBackgroundCopyJob2::GetReplyData()` (a copy of the reply bytes).
    pub fn get_reply_data(&self) -> Outcome<Vec<u8>> {
        let Some(job2) = &self.job2 else {
            return Outcome::failure(Hr::E_NOINTERFACE);
        };
        let mut buf: *mut u8 = null_mut();
        let mut len = 0u64;
        // SAFETY: out-parameters of the right types.
        let hr = unsafe { vcall!(job2, GetReplyData, &mut buf, &mut len) };
        let data = if hr.is_success() && !buf.is_null() {
            // SAFETY: BITS returns `len` bytes at `buf`, CoTaskMemAlloc'd
            // (at most 1 MB, bits-spec §9), ours to free.
            unsafe {
                let v = std::slice::from_raw_parts(buf, len as usize).to_vec();
                CoTaskMemFree(Some(buf as *const c_void));
                v
            }
        } else {
            Vec::new()
        };
        Outcome::from_call(hr, || data)
    }

    /// `IBackgroundCopyJob2::SetReplyFileName(path)`.
    pub fn set_reply_file_name(&self, path: &str) -> Hr {
        let Some(job2) = &self.job2 else {
            return Hr::E_NOINTERFACE;
        };
        let w = Wide::new(path);
        // SAFETY: valid null-terminated string.
        unsafe { vcall!(job2, SetReplyFileName, w.pcwstr()) }
    }

    /// `IBackgroundCopyJob2::SetReplyFileName(path)`, `None` passing NULL
    /// (BITS then picks the reply file name).
    pub fn set_reply_file_name_opt(&self, path: Option<&str>) -> Hr {
        let Some(job2) = &self.job2 else {
            return Hr::E_NOINTERFACE;
        };
        let w = path.map(Wide::new);
        let p = w.as_ref().map_or(PCWSTR::null(), Wide::pcwstr);
        // SAFETY: NULL or a valid null-terminated string that outlives the call.
        unsafe { vcall!(job2, SetReplyFileName, p) }
    }

    /// `IBackgroundCopyJob3` is queried for completeness (AddFileWithRanges
    /// etc. are not used by the scenarios yet).
    pub fn has_job3(&self) -> bool {
        self.job3.is_some()
    }
}

/// Names and progress of one IBackgroundCopyFile (each part optional).
pub(crate) fn file_info(f: &IBackgroundCopyFile) -> FileInfo {
    let mut remote = PWSTR::null();
    let mut local = PWSTR::null();
    let mut prog = BG_FILE_PROGRESS::default();
    // SAFETY: out-parameters of the right types; strings are ours to free.
    unsafe {
        let rhr = vcall!(f, GetRemoteName, &mut remote);
        let lhr = vcall!(f, GetLocalName, &mut local);
        let phr = vcall!(f, GetProgress, &mut prog);
        FileInfo {
            remote_name: if rhr.is_success() { take_pwstr(remote) } else { None },
            local_name: if lhr.is_success() { take_pwstr(local) } else { None },
            progress: phr.is_success().then_some(FileProgress {
                bytes_total: prog.BytesTotal,
                bytes_transferred: prog.BytesTransferred,
                completed: prog.Completed.as_bool(),
            }),
        }
    }
}

/// Context, code and file of an IBackgroundCopyError.
pub(crate) fn error_info(err: &IBackgroundCopyError) -> Outcome<JobErrorInfo> {
    let mut ctx = BG_ERROR_CONTEXT(0);
    let mut code = HRESULT(0);
    // SAFETY: out-parameters of the right types.
    let hr = unsafe { vcall!(err, GetError, &mut ctx, &mut code) };
    if hr.is_failure() {
        return Outcome::failure(hr);
    }
    let mut pfile: *mut c_void = null_mut();
    // SAFETY: out-parameter for one interface pointer.
    let get_file_hr = unsafe { vcall!(err, GetFile, &mut pfile) };
    let file = owned::<IBackgroundCopyFile>(get_file_hr, pfile)
        .ok()
        .ok()
        .map(|f| file_info(&f));
    Outcome::success(
        hr,
        JobErrorInfo {
            context: ErrorContext::from_raw(ctx.0 as u32),
            code: Hr::from(code),
            file,
            get_file_hr,
        },
    )
}
