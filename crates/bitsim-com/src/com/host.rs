//! The client's side of notifications: its callback objects and its notify
//! command line, called for real when the model says so.

use super::objects::{Ctx, Error, File, Job};
use crate::driver::Handle;
use bitsim_engine::{Completion, ExternalHost};
use bitsim_model::{Callback, ErrorContext, Hresult, JobId, Notification, NotificationId, NotificationKind};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use windows::Win32::Foundation::{CloseHandle, E_NOINTERFACE, RPC_E_DISCONNECTED, WAIT_OBJECT_0};
use windows::Win32::Networking::BackgroundIntelligentTransferService::{
    IBackgroundCopyCallback, IBackgroundCopyCallback2, IBackgroundCopyError, IBackgroundCopyFile, IBackgroundCopyJob,
};
use windows::Win32::System::Com::{CoInitializeEx, CoUninitialize, COINIT_MULTITHREADED};
use windows::Win32::System::Threading::{
    CreateProcessW, GetExitCodeProcess, WaitForSingleObject, INFINITE, PROCESS_CREATION_FLAGS, PROCESS_INFORMATION,
    STARTUPINFOW,
};
use windows_core::{IUnknown, Interface, HRESULT, PCWSTR, PWSTR};

/// A client's callback object. Registered from an MTA RPC thread, called from
/// MTA worker threads: a proxy in the multithreaded apartment may be used from
/// any of its threads.
#[derive(Clone)]
struct Agile(IUnknown);
// SAFETY: see above; only ever used from MTA threads of this process.
unsafe impl Send for Agile {}
// SAFETY: as above.
unsafe impl Sync for Agile {}

/// Executes the model's `Notify` and `RunCommandLine` effects.
#[derive(Default)]
pub(crate) struct ComHost {
    callbacks: Mutex<Vec<Agile>>,
    /// The last objects handed out, kept alive a while (see [`ComHost::retain`]).
    retained: Mutex<std::collections::VecDeque<Agile>>,
    handle: OnceLock<Handle>,
    me: OnceLock<Weak<ComHost>>,
}

impl std::fmt::Debug for ComHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ComHost")
    }
}

impl ComHost {
    pub(crate) fn new() -> Arc<ComHost> {
        let host = Arc::new(ComHost::default());
        let _ = host.me.set(Arc::downgrade(&host));
        host
    }

    pub(crate) fn set_handle(&self, handle: Handle) {
        let _ = self.handle.set(handle);
    }

    pub(crate) fn ctx(&self) -> Option<Ctx> {
        Some(Ctx {
            handle: self.handle.get()?.clone(),
            host: self.me.get()?.upgrade()?,
        })
    }

    /// Keeps one of our objects alive until RETAINED newer ones were handed
    /// out, so a freed object's address is not reused at once. A mitigation
    /// for a suspected cause of the open enumerator bug (docs/com-facade.md):
    /// Wine finds stub managers by object address and the client's release of
    /// an old proxy arrives asynchronously. It did not make the bug go away;
    /// remove it once the real cause is found.
    pub(crate) fn retain(&self, object: IUnknown) {
        const RETAINED: usize = 4096;
        let mut kept = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() == RETAINED {
            kept.pop_front();
        }
        kept.push_back(Agile(object));
    }

    /// Remembers a client's callback object; the model knows it by number.
    pub(crate) fn register(&self, unknown: &IUnknown) -> Callback {
        let callback2 = unknown.cast::<IBackgroundCopyCallback2>().is_ok();
        let mut all = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        all.push(Agile(unknown.clone()));
        Callback {
            id: all.len() as u32 - 1,
            callback2,
        }
    }

    pub(crate) fn callback(&self, id: u32) -> Option<IUnknown> {
        let all = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        all.get(id as usize).map(|a| a.0.clone())
    }

    /// Calls the callback method and returns its HRESULT exactly (S_FALSE and
    /// other success codes included: the model tells them apart).
    fn deliver(&self, n: &Notification) -> Hresult {
        let (Some(unknown), Some(ctx)) = (self.callback(n.callback.id), self.ctx()) else {
            return Hresult(RPC_E_DISCONNECTED.0 as u32);
        };
        let job: IBackgroundCopyJob = Job::object(&ctx, n.job);
        let raw = |hr: HRESULT| Hresult(hr.0 as u32);
        match n.kind {
            NotificationKind::FileTransferred => {
                let Ok(cb) = unknown.cast::<IBackgroundCopyCallback2>() else {
                    return raw(E_NOINTERFACE);
                };
                let file: IBackgroundCopyFile = File::object(&ctx, n.job, n.file.unwrap_or(0));
                // SAFETY: a live proxy, live arguments; the raw call keeps the HRESULT.
                raw(unsafe { (cb.vtable().FileTransferred)(cb.as_raw(), job.as_raw(), file.as_raw()) })
            }
            kind => {
                let Ok(cb) = unknown.cast::<IBackgroundCopyCallback>() else {
                    return raw(E_NOINTERFACE);
                };
                let vt = cb.vtable();
                match kind {
                    NotificationKind::JobTransferred => {
                        // SAFETY: as above.
                        raw(unsafe { (vt.JobTransferred)(cb.as_raw(), job.as_raw()) })
                    }
                    NotificationKind::JobError => {
                        let (hresult, context) = n.error.unwrap_or((Hresult(0), ErrorContext::None));
                        let id = n.job;
                        let file = ctx.handle.query(move |s| s.error_file(id).ok()).ok().flatten();
                        let error: IBackgroundCopyError = Error {
                            ctx: ctx.clone(),
                            job: n.job,
                            hresult,
                            context,
                            file,
                        }
                        .into();
                        // SAFETY: as above.
                        raw(unsafe { (vt.JobError)(cb.as_raw(), job.as_raw(), error.as_raw()) })
                    }
                    _ => {
                        // SAFETY: as above.
                        raw(unsafe { (vt.JobModification)(cb.as_raw(), job.as_raw(), 0) })
                    }
                }
            }
        }
    }
}

/// Initialises COM (MTA) on a worker thread for as long as it lives.
struct Mta;

impl Mta {
    fn enter() -> Mta {
        // SAFETY: paired with CoUninitialize in Drop on the same thread.
        let _ = unsafe { CoInitializeEx(None, COINIT_MULTITHREADED) };
        Mta
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        // SAFETY: entered in Mta::enter on this thread.
        unsafe { CoUninitialize() };
    }
}

impl ExternalHost for ComHost {
    fn notify(&self, notification: Notification, done: Completion) {
        let Some(me) = self.me.get().and_then(Weak::upgrade) else {
            done.notification_returned(notification.id, Hresult(RPC_E_DISCONNECTED.0 as u32));
            return;
        };
        // One thread per call: a blocked callback holds only its own thread
        // (the model allows four in flight per user).
        let spawned = std::thread::Builder::new().name("bitsim-notify".into()).spawn(move || {
            let _mta = Mta::enter();
            let hr = me.deliver(&notification);
            done.notification_returned(notification.id, hr);
        });
        if spawned.is_err() {
            tracing::error!("could not start a notification thread");
        }
    }

    fn run_command_line(&self, id: NotificationId, job: JobId, program: String, parameters: String, done: Completion) {
        let spawned = std::thread::Builder::new()
            .name("bitsim-cmdline".into())
            .spawn(move || {
                let code = run_process(&program, &parameters).unwrap_or_else(|e| {
                    tracing::warn!(%job, "notify command line {program:?} did not start: {e}");
                    -1
                });
                done.command_line_exited(id, code);
            });
        if spawned.is_err() {
            tracing::error!("could not start a command-line thread");
        }
    }

    /// A fresh model numbers callbacks from 0 again, so the old proxies go.
    /// They are released on a thread of their own, outside the lock: releasing
    /// a proxy whose call is still under way, or whose client apartment has
    /// ended, can block for as long as the RPC layer waits.
    fn reset(&self) {
        let old = std::mem::take(&mut *self.callbacks.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = std::thread::Builder::new()
            .name("bitsim-release".into())
            .spawn(move || {
                let _mta = Mta::enter();
                drop(old);
            });
    }
}

/// CreateProcess(program, parameters) as BITS does: `program` is the
/// application, `parameters` the whole command line (ref:
/// IBackgroundCopyJob2::SetNotifyCmdLine). Waits for it and returns its exit code.
fn run_process(program: &str, parameters: &str) -> windows_core::Result<i32> {
    let app: Vec<u16> = program.encode_utf16().chain(std::iter::once(0)).collect();
    let mut line: Vec<u16> = parameters.encode_utf16().chain(std::iter::once(0)).collect();
    let startup = STARTUPINFOW {
        cb: std::mem::size_of::<STARTUPINFOW>() as u32,
        ..Default::default()
    };
    let mut info = PROCESS_INFORMATION::default();
    // SAFETY: NUL-terminated buffers that outlive the call; line is writable as
    // CreateProcessW requires.
    unsafe {
        CreateProcessW(
            PCWSTR(app.as_ptr()),
            Some(PWSTR(if parameters.is_empty() {
                std::ptr::null_mut()
            } else {
                line.as_mut_ptr()
            })),
            None,
            None,
            false,
            PROCESS_CREATION_FLAGS(0),
            None,
            PCWSTR::null(),
            &startup,
            &mut info,
        )?;
    }
    let mut code = 0u32;
    // SAFETY: handles from the successful CreateProcessW, closed once.
    unsafe {
        if WaitForSingleObject(info.hProcess, INFINITE) == WAIT_OBJECT_0 {
            GetExitCodeProcess(info.hProcess, &mut code)?;
        }
        let _ = CloseHandle(info.hThread);
        let _ = CloseHandle(info.hProcess);
    }
    Ok(code as i32)
}
