//! The COM objects: IBackgroundCopyManager, IBackgroundCopyJob … Job5,
//! IBackgroundCopyFile, IBackgroundCopyError and the two enumerators.
//!
//! Every method is one translation: COM arguments → `ApiCall` (or a model
//! getter) → the model's HRESULT and value → out-parameters. A method the model
//! has no rule for answers E_NOTIMPL and writes a trace line saying so; none
//! invents a success.

use super::host::ComHost;
use super::strings::{co_string, from_pcwstr};
use crate::driver::Handle;
use bitsim_model::{
    ApiCall, ApiReply, ApiValue, AuthScheme, AuthTarget, Credential, ErrorContext, Hresult, JobId, Time,
};
use std::sync::{Arc, Mutex};
use windows::Win32::Foundation::{E_NOTIMPL, E_POINTER, FILETIME, RPC_E_DISCONNECTED, S_FALSE};
use windows::Win32::Networking::BackgroundIntelligentTransferService::*;
use windows::Win32::System::Com::CoTaskMemAlloc;
use windows_core::{implement, IUnknown, Ref, BOOL, GUID, HRESULT, PCWSTR, PWSTR};

type Result<T> = windows_core::Result<T>;

/// Every object's way to the model.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub handle: Handle,
    pub host: Arc<ComHost>,
}

fn err(hr: Hresult) -> windows_core::Error {
    windows_core::Error::from_hresult(HRESULT(hr.0 as i32))
}

/// The model's HRESULT as a COM return: S_OK is `Ok`, anything else (success
/// codes such as BG_S_PARTIAL_COMPLETE included) goes back as it is.
fn check(hr: Hresult) -> Result<()> {
    if hr == Hresult::S_OK {
        Ok(())
    } else {
        Err(err(hr))
    }
}

impl Ctx {
    fn call(&self, call: ApiCall) -> Result<ApiReply> {
        self.handle.call(call).map_err(|_| RPC_E_DISCONNECTED.into())
    }

    fn unit(&self, call: ApiCall) -> Result<()> {
        check(self.call(call)?.hresult)
    }

    /// The value of a successful call; its HRESULT otherwise.
    fn value(&self, call: ApiCall) -> Result<ApiValue> {
        let r = self.call(call)?;
        check(r.hresult)?;
        Ok(r.value)
    }

    /// A model getter without an `ApiCall` of its own.
    fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&bitsim_model::Service) -> bitsim_model::ApiResult<T> + Send + 'static,
    ) -> Result<T> {
        match self.handle.query(f) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(hr)) => Err(err(hr)),
            Err(_) => Err(RPC_E_DISCONNECTED.into()),
        }
    }

    fn not_modelled<T>(&self, what: &str) -> Result<T> {
        self.handle
            .note(format!("com {what}: no rule in the model -> 0x80004001 (E_NOTIMPL)"));
        Err(E_NOTIMPL.into())
    }
}

fn unexpected(v: ApiValue) -> windows_core::Error {
    tracing::error!("unexpected model value {v:?}");
    windows::Win32::Foundation::E_UNEXPECTED.into()
}

// ----- ids and times -------------------------------------------------------------

/// A job's GUID: a fixed prefix and the model's job number, so the GUID a client
/// holds always leads back to the same job.
pub(crate) fn job_guid(job: JobId) -> GUID {
    GUID::from_values(0xb175_1d00, 0x0000, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, 0]).then_job(job)
}

trait JobGuid {
    fn then_job(self, job: JobId) -> GUID;
}

impl JobGuid for GUID {
    fn then_job(mut self, job: JobId) -> GUID {
        self.data4[4..8].copy_from_slice(&job.0.to_be_bytes());
        self
    }
}

/// The job a GUID names; a GUID bitsim never handed out names no job (the
/// model answers BG_E_NOT_FOUND for it).
pub(crate) fn guid_job(guid: &GUID) -> JobId {
    let prefix = job_guid(JobId(0));
    if guid.data1 == prefix.data1
        && guid.data2 == prefix.data2
        && guid.data3 == prefix.data3
        && guid.data4[..4] == prefix.data4[..4]
    {
        JobId(u32::from_be_bytes([
            guid.data4[4],
            guid.data4[5],
            guid.data4[6],
            guid.data4[7],
        ]))
    } else {
        JobId(u32::MAX)
    }
}

/// Virtual time as a FILETIME: the driver's epoch (the wall-clock moment of
/// virtual time 0) plus the virtual milliseconds.
fn filetime(epoch: std::time::SystemTime, t: Time) -> FILETIME {
    // 100 ns intervals from 1601-01-01 to 1970-01-01.
    const UNIX_AS_FILETIME: u64 = 116_444_736_000_000_000;
    let since_unix = epoch.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let v = UNIX_AS_FILETIME + (since_unix.as_nanos() / 100) as u64 + t.0 * 10_000;
    FILETIME {
        dwLowDateTime: v as u32,
        dwHighDateTime: (v >> 32) as u32,
    }
}

// ----- IBackgroundCopyManager -----------------------------------------------------

#[implement(IBackgroundCopyManager)]
pub(crate) struct Manager {
    pub ctx: Ctx,
}

impl IBackgroundCopyManager_Impl for Manager_Impl {
    fn CreateJob(
        &self,
        displayname: &PCWSTR,
        r#type: BG_JOB_TYPE,
        pjobid: *mut GUID,
        ppjob: windows_core::OutRef<IBackgroundCopyJob>,
    ) -> Result<()> {
        if pjobid.is_null() || ppjob.is_null() {
            return Err(E_POINTER.into());
        }
        // The model says what a value outside BG_JOB_TYPE is.
        let job_type = bitsim_model::job_type_from_windows(r#type.0 as u32).map_err(err)?;
        let value = self.ctx.value(ApiCall::CreateJob {
            user: self.ctx.handle.user(),
            display_name: from_pcwstr(displayname).unwrap_or_default(),
            job_type,
        })?;
        let ApiValue::Job(job) = value else {
            return Err(unexpected(value));
        };
        // SAFETY: checked non-null above; the caller owns the out-parameter.
        unsafe { *pjobid = job_guid(job) };
        ppjob.write(Some(Job::object(&self.ctx, job)))
    }

    fn GetJob(&self, jobid: *const GUID) -> Result<IBackgroundCopyJob> {
        if jobid.is_null() {
            return Err(E_POINTER.into());
        }
        // SAFETY: checked non-null.
        let job = guid_job(unsafe { &*jobid });
        let value = self.ctx.value(ApiCall::GetJob {
            user: self.ctx.handle.user(),
            job,
        })?;
        let ApiValue::Job(job) = value else {
            return Err(unexpected(value));
        };
        Ok(Job::object(&self.ctx, job))
    }

    fn EnumJobs(&self, dwflags: u32) -> Result<IEnumBackgroundCopyJobs> {
        if bitsim_model::enum_jobs_scope(dwflags).map_err(err)? == bitsim_model::EnumScope::AllUsers {
            return self
                .ctx
                .not_modelled("IBackgroundCopyManager::EnumJobs(BG_JOB_ENUM_ALL_USERS)");
        }
        let value = self.ctx.value(ApiCall::EnumJobs {
            user: self.ctx.handle.user(),
        })?;
        let ApiValue::Jobs(jobs) = value else {
            return Err(unexpected(value));
        };
        let items = jobs.into_iter().map(|j| Job::object(&self.ctx, j)).collect();
        let e: IEnumBackgroundCopyJobs = EnumJobs::new(items).into();
        self.ctx.host.retain(e.clone().into());
        Ok(e)
    }

    fn GetErrorDescription(&self, hresult: HRESULT, _languageid: u32) -> Result<PWSTR> {
        co_string(&describe(Hresult(hresult.0 as u32)))
    }
}

/// An error's text: its BITS name where the model knows one.
fn describe(hr: Hresult) -> String {
    match hr.name() {
        Some(name) => format!("{name} ({hr})"),
        None => format!("{hr}"),
    }
}

// ----- IBackgroundCopyJob … Job5 --------------------------------------------------

#[implement(IBackgroundCopyJob5)]
pub(crate) struct Job {
    ctx: Ctx,
    id: JobId,
}

impl Job {
    /// The job as its client sees it (QueryInterface reaches Job2 … Job5).
    pub(crate) fn object(ctx: &Ctx, id: JobId) -> IBackgroundCopyJob {
        let job: IBackgroundCopyJob5 = Job { ctx: ctx.clone(), id }.into();
        ctx.host.retain(job.clone().into());
        job.into()
    }
}

impl Job_Impl {
    fn name(&self, method: &str) -> String {
        format!("{} {method}", self.id)
    }
}

impl IBackgroundCopyJob_Impl for Job_Impl {
    fn AddFileSet(&self, cfilecount: u32, pfileset: *const BG_FILE_INFO) -> Result<()> {
        if pfileset.is_null() && cfilecount > 0 {
            return Err(E_POINTER.into());
        }
        let set = if cfilecount == 0 {
            &[][..]
        } else {
            // SAFETY: the caller passes cfilecount elements (marshalled by the stub).
            unsafe { std::slice::from_raw_parts(pfileset, cfilecount as usize) }
        };
        let files = set
            .iter()
            .map(|f| {
                (
                    from_pcwstr(&PCWSTR(f.RemoteName.0)).unwrap_or_default(),
                    from_pcwstr(&PCWSTR(f.LocalName.0)).unwrap_or_default(),
                )
            })
            .collect();
        self.ctx.unit(ApiCall::AddFileSet { job: self.id, files })
    }

    fn AddFile(&self, remoteurl: &PCWSTR, localname: &PCWSTR) -> Result<()> {
        self.ctx.unit(ApiCall::AddFile {
            job: self.id,
            remote_name: from_pcwstr(remoteurl).unwrap_or_default(),
            local_name: from_pcwstr(localname).unwrap_or_default(),
        })
    }

    fn EnumFiles(&self) -> Result<IEnumBackgroundCopyFiles> {
        let id = self.id;
        let count = self.ctx.query(move |s| s.file_count(id))?;
        let items = (0..count).map(|n| File::object(&self.ctx, id, n)).collect();
        let e: IEnumBackgroundCopyFiles = EnumFiles::new(items).into();
        self.ctx.host.retain(e.clone().into());
        Ok(e)
    }

    fn Suspend(&self) -> Result<()> {
        self.ctx.unit(ApiCall::Suspend { job: self.id })
    }

    fn Resume(&self) -> Result<()> {
        self.ctx.unit(ApiCall::Resume { job: self.id })
    }

    fn Cancel(&self) -> Result<()> {
        self.ctx.unit(ApiCall::Cancel { job: self.id })
    }

    fn Complete(&self) -> Result<()> {
        self.ctx.unit(ApiCall::Complete { job: self.id })
    }

    fn GetId(&self) -> Result<GUID> {
        Ok(job_guid(self.id))
    }

    fn GetType(&self) -> Result<BG_JOB_TYPE> {
        let id = self.id;
        let t = self.ctx.query(move |s| s.job_type(id))?;
        Ok(BG_JOB_TYPE(t.value() as i32))
    }

    fn GetProgress(&self, pval: *mut BG_JOB_PROGRESS) -> Result<()> {
        if pval.is_null() {
            return Err(E_POINTER.into());
        }
        match self.ctx.value(ApiCall::GetProgress { job: self.id })? {
            ApiValue::Progress(p) => {
                // SAFETY: checked non-null.
                unsafe {
                    *pval = BG_JOB_PROGRESS {
                        BytesTotal: p.bytes_total,
                        BytesTransferred: p.bytes_transferred,
                        FilesTotal: p.files_total,
                        FilesTransferred: p.files_transferred,
                    }
                };
                Ok(())
            }
            v => Err(unexpected(v)),
        }
    }

    fn GetTimes(&self, pval: *mut BG_JOB_TIMES) -> Result<()> {
        if pval.is_null() {
            return Err(E_POINTER.into());
        }
        match self.ctx.value(ApiCall::GetTimes { job: self.id })? {
            ApiValue::Times(t) => {
                let epoch = self.ctx.handle.epoch();
                let filetime = |t| filetime(epoch, t);
                // SAFETY: checked non-null.
                unsafe {
                    *pval = BG_JOB_TIMES {
                        CreationTime: filetime(t.creation),
                        ModificationTime: filetime(t.modification),
                        TransferCompletionTime: t.transfer_completion.map(filetime).unwrap_or_default(),
                    }
                };
                Ok(())
            }
            v => Err(unexpected(v)),
        }
    }

    fn GetState(&self) -> Result<BG_JOB_STATE> {
        match self.ctx.value(ApiCall::GetState { job: self.id })? {
            ApiValue::State(s) => Ok(BG_JOB_STATE(s.value() as i32)),
            v => Err(unexpected(v)),
        }
    }

    fn GetError(&self) -> Result<IBackgroundCopyError> {
        match self.ctx.value(ApiCall::GetError { job: self.id })? {
            ApiValue::Error { hresult, context, file } => Ok(Error {
                ctx: self.ctx.clone(),
                job: self.id,
                hresult,
                context,
                file,
            }
            .into()),
            v => Err(unexpected(v)),
        }
    }

    fn GetOwner(&self) -> Result<PWSTR> {
        match self.ctx.value(ApiCall::GetOwner { job: self.id })? {
            ApiValue::User(u) => {
                let name = self.ctx.handle.query(move |s| s.user_name(u).to_string());
                co_string(&name.map_err(|_| windows_core::Error::from(RPC_E_DISCONNECTED))?)
            }
            v => Err(unexpected(v)),
        }
    }

    fn SetDisplayName(&self, val: &PCWSTR) -> Result<()> {
        self.ctx.unit(ApiCall::SetDisplayName {
            job: self.id,
            name: from_pcwstr(val).unwrap_or_default(),
        })
    }

    fn GetDisplayName(&self) -> Result<PWSTR> {
        let id = self.id;
        co_string(&self.ctx.query(move |s| s.display_name(id))?)
    }

    fn SetDescription(&self, val: &PCWSTR) -> Result<()> {
        self.ctx.unit(ApiCall::SetDescription {
            job: self.id,
            text: from_pcwstr(val).unwrap_or_default(),
        })
    }

    fn GetDescription(&self) -> Result<PWSTR> {
        let id = self.id;
        co_string(&self.ctx.query(move |s| s.description(id))?)
    }

    fn SetPriority(&self, val: BG_JOB_PRIORITY) -> Result<()> {
        self.ctx.unit(ApiCall::SetPriority {
            job: self.id,
            priority: val.0 as u32,
        })
    }

    fn GetPriority(&self) -> Result<BG_JOB_PRIORITY> {
        match self.ctx.value(ApiCall::GetPriority { job: self.id })? {
            ApiValue::Priority(p) => Ok(BG_JOB_PRIORITY(p.value() as i32)),
            v => Err(unexpected(v)),
        }
    }

    fn SetNotifyFlags(&self, val: u32) -> Result<()> {
        self.ctx.unit(ApiCall::SetNotifyFlags {
            job: self.id,
            flags: val,
        })
    }

    fn GetNotifyFlags(&self) -> Result<u32> {
        match self.ctx.value(ApiCall::GetNotifyFlags { job: self.id })? {
            ApiValue::Count(n) => Ok(n),
            v => Err(unexpected(v)),
        }
    }

    fn SetNotifyInterface(&self, val: Ref<IUnknown>) -> Result<()> {
        let callback = val.as_ref().map(|unknown| self.ctx.host.register(unknown));
        self.ctx.unit(ApiCall::SetNotifyInterface { job: self.id, callback })
    }

    fn GetNotifyInterface(&self) -> Result<IUnknown> {
        match self.ctx.value(ApiCall::GetNotifyInterface { job: self.id })? {
            ApiValue::Callback(Some(cb)) => self.ctx.host.callback(cb.id).ok_or(windows_core::Error::empty()),
            // NULL: the generated stub returns S_OK with a null pointer.
            ApiValue::Callback(None) => Err(windows_core::Error::empty()),
            v => Err(unexpected(v)),
        }
    }

    fn SetMinimumRetryDelay(&self, seconds: u32) -> Result<()> {
        self.ctx.unit(ApiCall::SetMinimumRetryDelay { job: self.id, seconds })
    }

    fn GetMinimumRetryDelay(&self) -> Result<u32> {
        match self.ctx.value(ApiCall::GetMinimumRetryDelay { job: self.id })? {
            ApiValue::Count(n) => Ok(n),
            v => Err(unexpected(v)),
        }
    }

    fn SetNoProgressTimeout(&self, seconds: u32) -> Result<()> {
        self.ctx.unit(ApiCall::SetNoProgressTimeout { job: self.id, seconds })
    }

    fn GetNoProgressTimeout(&self) -> Result<u32> {
        match self.ctx.value(ApiCall::GetNoProgressTimeout { job: self.id })? {
            ApiValue::Count(n) => Ok(n),
            v => Err(unexpected(v)),
        }
    }

    fn GetErrorCount(&self) -> Result<u32> {
        match self.ctx.value(ApiCall::GetErrorCount { job: self.id })? {
            ApiValue::Count(n) => Ok(n),
            v => Err(unexpected(v)),
        }
    }

    fn SetProxySettings(&self, _: BG_JOB_PROXY_USAGE, _: &PCWSTR, _: &PCWSTR) -> Result<()> {
        self.ctx.not_modelled(&self.name("SetProxySettings"))
    }

    fn GetProxySettings(&self, _: *mut BG_JOB_PROXY_USAGE, _: *mut PWSTR, _: *mut PWSTR) -> Result<()> {
        self.ctx.not_modelled(&self.name("GetProxySettings"))
    }

    fn TakeOwnership(&self) -> Result<()> {
        self.ctx.unit(ApiCall::TakeOwnership {
            job: self.id,
            user: self.ctx.handle.user(),
        })
    }
}

impl IBackgroundCopyJob2_Impl for Job_Impl {
    fn SetNotifyCmdLine(&self, program: &PCWSTR, parameters: &PCWSTR) -> Result<()> {
        self.ctx.unit(ApiCall::SetNotifyCmdLine {
            job: self.id,
            program: from_pcwstr(program),
            parameters: from_pcwstr(parameters),
        })
    }

    fn GetNotifyCmdLine(&self, pprogram: *mut PWSTR, pparameters: *mut PWSTR) -> Result<()> {
        if pprogram.is_null() || pparameters.is_null() {
            return Err(E_POINTER.into());
        }
        match self.ctx.value(ApiCall::GetNotifyCmdLine { job: self.id })? {
            ApiValue::CmdLine(line) => {
                let (program, parameters) = match line {
                    Some((p, a)) => (co_string(&p)?, co_string(&a)?),
                    None => (PWSTR::null(), PWSTR::null()),
                };
                // SAFETY: checked non-null.
                unsafe {
                    *pprogram = program;
                    *pparameters = parameters;
                }
                Ok(())
            }
            v => Err(unexpected(v)),
        }
    }

    fn GetReplyProgress(&self, pprogress: *mut BG_JOB_REPLY_PROGRESS) -> Result<()> {
        if pprogress.is_null() {
            return Err(E_POINTER.into());
        }
        match self.ctx.value(ApiCall::GetReplyProgress { job: self.id })? {
            ApiValue::ReplyProgress(p) => {
                // SAFETY: checked non-null.
                unsafe {
                    *pprogress = BG_JOB_REPLY_PROGRESS {
                        BytesTotal: p.bytes_total,
                        BytesTransferred: p.bytes_transferred,
                    }
                };
                Ok(())
            }
            v => Err(unexpected(v)),
        }
    }

    fn GetReplyData(&self, ppbuffer: *mut *mut u8, plength: *mut u64) -> Result<()> {
        if ppbuffer.is_null() || plength.is_null() {
            return Err(E_POINTER.into());
        }
        let len = match self.ctx.value(ApiCall::GetReplyData { job: self.id })? {
            ApiValue::Bytes(n) => n as usize,
            v => return Err(unexpected(v)),
        };
        let body = self
            .ctx
            .handle
            .reply_body(self.id)
            .map_err(|_| windows_core::Error::from(RPC_E_DISCONNECTED))?
            .unwrap_or_default();
        let len = len.min(body.len());
        let buffer = if len == 0 {
            std::ptr::null_mut()
        } else {
            // SAFETY: a fresh CoTaskMem block of len bytes, filled below; the client frees it.
            let p = unsafe { CoTaskMemAlloc(len) } as *mut u8;
            if p.is_null() {
                return Err(windows::Win32::Foundation::E_OUTOFMEMORY.into());
            }
            // SAFETY: p has len bytes; body has at least len.
            unsafe { std::ptr::copy_nonoverlapping(body.as_ptr(), p, len) };
            p
        };
        // SAFETY: checked non-null.
        unsafe {
            *ppbuffer = buffer;
            *plength = len as u64;
        }
        Ok(())
    }

    fn SetReplyFileName(&self, replyfilename: &PCWSTR) -> Result<()> {
        self.ctx.unit(ApiCall::SetReplyFileName {
            job: self.id,
            path: from_pcwstr(replyfilename),
        })
    }

    fn GetReplyFileName(&self) -> Result<PWSTR> {
        let id = self.id;
        match self.ctx.query(move |s| s.reply_file_name(id))? {
            Some(name) => co_string(&name),
            None => Ok(PWSTR::null()),
        }
    }

    fn SetCredentials(&self, credentials: *const BG_AUTH_CREDENTIALS) -> Result<()> {
        if credentials.is_null() {
            return Err(E_POINTER.into());
        }
        // SAFETY: checked non-null; marshalled by the stub.
        let c = unsafe { &*credentials };
        let target = AuthTarget::from_windows(c.Target.0 as u32).map_err(err)?;
        let scheme = AuthScheme::from_windows(c.Scheme.0 as u32).map_err(err)?;
        // SAFETY: every BG_AUTH_CREDENTIALS_UNION member is a BG_BASIC_CREDENTIALS.
        let basic = unsafe { c.Credentials.Basic };
        self.ctx.unit(ApiCall::SetCredentials {
            job: self.id,
            credential: Credential {
                target,
                scheme,
                user: from_pcwstr(&PCWSTR(basic.UserName.0)),
                password: from_pcwstr(&PCWSTR(basic.Password.0)),
            },
        })
    }

    fn RemoveCredentials(&self, target: BG_AUTH_TARGET, scheme: BG_AUTH_SCHEME) -> Result<()> {
        let target = AuthTarget::from_windows(target.0 as u32).map_err(err)?;
        let scheme = AuthScheme::from_windows(scheme.0 as u32).map_err(err)?;
        self.ctx.unit(ApiCall::RemoveCredentials {
            job: self.id,
            target,
            scheme,
        })
    }
}

impl IBackgroundCopyJob3_Impl for Job_Impl {
    fn ReplaceRemotePrefix(&self, _: &PCWSTR, _: &PCWSTR) -> Result<()> {
        self.ctx.not_modelled(&self.name("ReplaceRemotePrefix"))
    }

    fn AddFileWithRanges(&self, _: &PCWSTR, _: &PCWSTR, _: u32, _: *const BG_FILE_RANGE) -> Result<()> {
        self.ctx.not_modelled(&self.name("AddFileWithRanges"))
    }

    fn SetFileACLFlags(&self, _: u32) -> Result<()> {
        self.ctx.not_modelled(&self.name("SetFileACLFlags"))
    }

    fn GetFileACLFlags(&self) -> Result<u32> {
        self.ctx.not_modelled(&self.name("GetFileACLFlags"))
    }
}

impl IBackgroundCopyJob4_Impl for Job_Impl {
    fn SetPeerCachingFlags(&self, _: u32) -> Result<()> {
        self.ctx.not_modelled(&self.name("SetPeerCachingFlags"))
    }

    fn GetPeerCachingFlags(&self) -> Result<u32> {
        self.ctx.not_modelled(&self.name("GetPeerCachingFlags"))
    }

    fn GetOwnerIntegrityLevel(&self) -> Result<u32> {
        self.ctx.not_modelled(&self.name("GetOwnerIntegrityLevel"))
    }

    fn GetOwnerElevationState(&self) -> Result<BOOL> {
        self.ctx.not_modelled(&self.name("GetOwnerElevationState"))
    }

    fn SetMaximumDownloadTime(&self, timeout: u32) -> Result<()> {
        self.ctx.unit(ApiCall::SetMaximumDownloadTime {
            job: self.id,
            seconds: timeout,
        })
    }

    fn GetMaximumDownloadTime(&self) -> Result<u32> {
        let id = self.id;
        self.ctx.query(move |s| s.maximum_download_time(id))
    }
}

impl IBackgroundCopyJob5_Impl for Job_Impl {
    fn SetProperty(&self, propertyid: BITS_JOB_PROPERTY_ID, propertyvalue: &BITS_JOB_PROPERTY_VALUE) -> Result<()> {
        match propertyid {
            BITS_JOB_PROPERTY_ID_COST_FLAGS => self.ctx.unit(ApiCall::SetCostFlags {
                job: self.id,
                // SAFETY: COST_FLAGS is the union's DWORD member.
                flags: unsafe { propertyvalue.Dword },
            }),
            other => self
                .ctx
                .not_modelled(&self.name(&format!("SetProperty(property {})", other.0))),
        }
    }

    fn GetProperty(&self, propertyid: BITS_JOB_PROPERTY_ID) -> Result<BITS_JOB_PROPERTY_VALUE> {
        match propertyid {
            BITS_JOB_PROPERTY_ID_COST_FLAGS => match self.ctx.value(ApiCall::GetCostFlags { job: self.id })? {
                ApiValue::Count(n) => Ok(BITS_JOB_PROPERTY_VALUE { Dword: n }),
                v => Err(unexpected(v)),
            },
            other => self
                .ctx
                .not_modelled(&self.name(&format!("GetProperty(property {})", other.0))),
        }
    }
}

// ----- IBackgroundCopyFile ---------------------------------------------------------

#[implement(IBackgroundCopyFile)]
pub(crate) struct File {
    ctx: Ctx,
    job: JobId,
    index: usize,
}

impl File {
    /// The file as its client sees it.
    pub(crate) fn object(ctx: &Ctx, job: JobId, index: usize) -> IBackgroundCopyFile {
        let file: IBackgroundCopyFile = File::new(ctx, job, index).into();
        ctx.host.retain(file.clone().into());
        file
    }

    pub(crate) fn new(ctx: &Ctx, job: JobId, index: usize) -> File {
        File {
            ctx: ctx.clone(),
            job,
            index,
        }
    }
}

impl IBackgroundCopyFile_Impl for File_Impl {
    fn GetRemoteName(&self) -> Result<PWSTR> {
        let (job, index) = (self.job, self.index);
        co_string(&self.ctx.query(move |s| s.file_names(job, index))?.0)
    }

    fn GetLocalName(&self) -> Result<PWSTR> {
        let (job, index) = (self.job, self.index);
        co_string(&self.ctx.query(move |s| s.file_names(job, index))?.1)
    }

    fn GetProgress(&self, pval: *mut BG_FILE_PROGRESS) -> Result<()> {
        if pval.is_null() {
            return Err(E_POINTER.into());
        }
        match self.ctx.value(ApiCall::GetFileProgress {
            job: self.job,
            file: self.index,
        })? {
            ApiValue::FileProgress(p) => {
                // SAFETY: checked non-null.
                unsafe {
                    *pval = BG_FILE_PROGRESS {
                        BytesTotal: p.bytes_total,
                        BytesTransferred: p.bytes_transferred,
                        Completed: p.completed.into(),
                    }
                };
                Ok(())
            }
            v => Err(unexpected(v)),
        }
    }
}

// ----- IBackgroundCopyError --------------------------------------------------------

/// A snapshot of a job's error, as BITS hands it out (GetError, JobError).
#[implement(IBackgroundCopyError)]
pub(crate) struct Error {
    pub ctx: Ctx,
    pub job: JobId,
    pub hresult: Hresult,
    pub context: ErrorContext,
    pub file: Option<usize>,
}

impl IBackgroundCopyError_Impl for Error_Impl {
    fn GetError(&self, pcontext: *mut BG_ERROR_CONTEXT, pcode: *mut HRESULT) -> Result<()> {
        if pcontext.is_null() || pcode.is_null() {
            return Err(E_POINTER.into());
        }
        // SAFETY: checked non-null.
        unsafe {
            *pcontext = BG_ERROR_CONTEXT(self.context.value() as i32);
            *pcode = HRESULT(self.hresult.0 as i32);
        }
        Ok(())
    }

    fn GetFile(&self) -> Result<IBackgroundCopyFile> {
        match self.file {
            Some(n) => Ok(File::object(&self.ctx, self.job, n)),
            // ref: IBackgroundCopyError::GetFile: the flavor's "file not
            // available" code (BG_E_FILE_NOT_AVAILABLE for BITS) when the error is
            // not about a file; the model's Profile names it.
            None => Err(err(self
                .ctx
                .handle
                .query(|s| s.profile().codes.file_not_available)
                .map_err(|_| windows_core::Error::from(RPC_E_DISCONNECTED))?)),
        }
    }

    fn GetErrorDescription(&self, _languageid: u32) -> Result<PWSTR> {
        co_string(&describe(self.hresult))
    }

    fn GetErrorContextDescription(&self, _languageid: u32) -> Result<PWSTR> {
        co_string(&format!("{:?}", self.context))
    }

    fn GetProtocol(&self) -> Result<PWSTR> {
        let Some(n) = self.file else {
            // ref: IBackgroundCopyError::GetProtocol: BG_E_PROTOCOL_NOT_AVAILABLE.
            return Err(err(Hresult::BG_E_PROTOCOL_NOT_AVAILABLE));
        };
        let job = self.job;
        let remote = self.ctx.query(move |s| s.file_names(job, n))?.0;
        let scheme = remote.split_once("://").map_or("file", |(s, _)| s).to_ascii_lowercase();
        co_string(&scheme)
    }
}

// ----- enumerators -----------------------------------------------------------------

/// A snapshot list with a cursor: what IEnum* objects are. Both enumerators are
/// this with their item type.
struct Cursor<T>(Mutex<Position<T>>);

struct Position<T> {
    items: Vec<T>,
    next: usize,
}

impl<T: Clone> Cursor<T> {
    fn new(items: Vec<T>) -> Cursor<T> {
        Cursor(Mutex::new(Position { items, next: 0 }))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Position<T>>> {
        self.0.lock().map_err(|_| windows_core::Error::from(E_POINTER))
    }

    /// IEnum*::Next: up to `celt` items; S_FALSE when fewer were left.
    fn next(&self, celt: u32, out: *mut Option<T>, fetched: *mut u32) -> Result<()> {
        if out.is_null() || (celt > 1 && fetched.is_null()) {
            return Err(E_POINTER.into());
        }
        let mut c = self.lock()?;
        let mut n = 0;
        while n < celt as usize && c.next < c.items.len() {
            // SAFETY: the caller's array has celt elements.
            unsafe { out.add(n).write(Some(c.items[c.next].clone())) };
            c.next += 1;
            n += 1;
        }
        if !fetched.is_null() {
            // SAFETY: checked non-null.
            unsafe { *fetched = n as u32 };
        }
        if n == celt as usize {
            Ok(())
        } else {
            Err(S_FALSE.into())
        }
    }

    /// IEnum*::Skip: S_FALSE when fewer than `celt` were left.
    fn skip(&self, celt: u32) -> Result<()> {
        let mut c = self.lock()?;
        let left = c.items.len() - c.next;
        c.next += left.min(celt as usize);
        if celt as usize <= left {
            Ok(())
        } else {
            Err(S_FALSE.into())
        }
    }

    fn reset(&self) -> Result<()> {
        self.lock().map(|mut c| c.next = 0)
    }

    fn count(&self) -> Result<u32> {
        self.lock().map(|c| c.items.len() as u32)
    }

    /// IEnum*::Clone: the same items, at the same position.
    fn duplicate(&self) -> Result<Cursor<T>> {
        let c = self.lock()?;
        Ok(Cursor(Mutex::new(Position {
            items: c.items.clone(),
            next: c.next,
        })))
    }
}

#[implement(IEnumBackgroundCopyJobs)]
pub(crate) struct EnumJobs(Cursor<IBackgroundCopyJob>);

impl EnumJobs {
    fn new(items: Vec<IBackgroundCopyJob>) -> EnumJobs {
        EnumJobs(Cursor::new(items))
    }
}

impl IEnumBackgroundCopyJobs_Impl for EnumJobs_Impl {
    fn Next(&self, celt: u32, rgelt: *mut Option<IBackgroundCopyJob>, pceltfetched: *mut u32) -> Result<()> {
        self.0.next(celt, rgelt, pceltfetched)
    }
    fn Skip(&self, celt: u32) -> Result<()> {
        self.0.skip(celt)
    }
    fn Reset(&self) -> Result<()> {
        self.0.reset()
    }
    fn Clone(&self) -> Result<IEnumBackgroundCopyJobs> {
        Ok(EnumJobs(self.0.duplicate()?).into())
    }
    fn GetCount(&self) -> Result<u32> {
        self.0.count()
    }
}

#[implement(IEnumBackgroundCopyFiles)]
pub(crate) struct EnumFiles(Cursor<IBackgroundCopyFile>);

impl EnumFiles {
    fn new(items: Vec<IBackgroundCopyFile>) -> EnumFiles {
        EnumFiles(Cursor::new(items))
    }
}

impl IEnumBackgroundCopyFiles_Impl for EnumFiles_Impl {
    fn Next(&self, celt: u32, rgelt: *mut Option<IBackgroundCopyFile>, pceltfetched: *mut u32) -> Result<()> {
        self.0.next(celt, rgelt, pceltfetched)
    }
    fn Skip(&self, celt: u32) -> Result<()> {
        self.0.skip(celt)
    }
    fn Reset(&self) -> Result<()> {
        self.0.reset()
    }
    fn Clone(&self) -> Result<IEnumBackgroundCopyFiles> {
        Ok(EnumFiles(self.0.duplicate()?).into())
    }
    fn GetCount(&self) -> Result<u32> {
        self.0.count()
    }
}
