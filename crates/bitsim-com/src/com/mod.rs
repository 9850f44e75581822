//! The COM server: class objects for BITS's CLSIDs, the objects behind them
//! (`objects`), and the client side of notifications (`host`).

mod host;
pub mod install;
mod objects;
mod strings;

use crate::control::Control;
use crate::driver::{Driver, DriverConfig};
use host::ComHost;
use objects::{Ctx, Manager};
use std::net::SocketAddr;
use windows::Win32::Foundation::CLASS_E_NOAGGREGATION;
use windows::Win32::Networking::BackgroundIntelligentTransferService as bits;
use windows::Win32::System::Com::{
    CoInitializeEx, CoRegisterClassObject, CoRevokeClassObject, IClassFactory, IClassFactory_Impl, CLSCTX_LOCAL_SERVER,
    COINIT_MULTITHREADED, REGCLS_MULTIPLEUSE,
};
use windows_core::{implement, IUnknown, Interface, Ref, BOOL, GUID};

/// How `bitsim com-server` runs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub driver: DriverConfig,
    /// The control endpoint's address (loopback; port 0 picks one).
    pub control: SocketAddr,
    /// Windows: install the per-user override (HKCU TreatAs) for as long as
    /// the server runs (see [`install`]).
    pub install: Option<String>,
}

/// Every BITS manager CLSID a client may ask for: one class behind all of them,
/// as on Windows (the versioned CLSIDs differ only in the interfaces the
/// version guarantees).
const CLSIDS: [(&str, GUID); 10] = [
    ("BackgroundCopyManager", bits::BackgroundCopyManager),
    ("BackgroundCopyManager1_5", bits::BackgroundCopyManager1_5),
    ("BackgroundCopyManager2_0", bits::BackgroundCopyManager2_0),
    ("BackgroundCopyManager2_5", bits::BackgroundCopyManager2_5),
    ("BackgroundCopyManager3_0", bits::BackgroundCopyManager3_0),
    ("BackgroundCopyManager4_0", bits::BackgroundCopyManager4_0),
    ("BackgroundCopyManager5_0", bits::BackgroundCopyManager5_0),
    ("BackgroundCopyManager10_1", bits::BackgroundCopyManager10_1),
    ("BackgroundCopyManager10_2", bits::BackgroundCopyManager10_2),
    ("BackgroundCopyManager10_3", bits::BackgroundCopyManager10_3),
];

#[implement(IClassFactory)]
struct Factory {
    ctx: Ctx,
}

impl IClassFactory_Impl for Factory_Impl {
    fn CreateInstance(
        &self,
        punkouter: Ref<IUnknown>,
        riid: *const GUID,
        ppvobject: *mut *mut core::ffi::c_void,
    ) -> windows_core::Result<()> {
        if punkouter.is_some() {
            return Err(CLASS_E_NOAGGREGATION.into());
        }
        let manager: IUnknown = Manager { ctx: self.ctx.clone() }.into();
        // SAFETY: riid and ppvobject come from COM's activation path.
        unsafe { manager.query(riid, ppvobject).ok() }
    }

    fn LockServer(&self, _flock: BOOL) -> windows_core::Result<()> {
        Ok(())
    }
}

/// Every BITS manager CLSID.
pub fn bits_clsids() -> Vec<GUID> {
    CLSIDS.iter().map(|(_, c)| *c).collect()
}

/// The per-user override, removed when the server ends (also on a panic's
/// unwinding); see [`install`] for what happens after a crash.
struct Installed;

impl Installed {
    fn new(command: &str) -> Result<Installed, String> {
        install::install(&bits_clsids(), command, std::process::id())?;
        Ok(Installed)
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        install::uninstall(&bits_clsids());
    }
}

/// Runs the COM server until `POST /_bitsim/quit` on the control endpoint.
/// Prints one line when ready: `bitsim com-server ready control=http://ADDR`.
pub fn run_server(options: ServerOptions) -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: once, on this thread, before any other COM call.
    unsafe { CoInitializeEx(None, COINIT_MULTITHREADED) }.ok()?;
    let host = ComHost::new();
    let driver = Driver::start(options.driver.clone(), host.clone())?;
    host.set_handle(driver.handle());
    let ctx = host.ctx().ok_or("the COM host did not start")?;
    let (quit_tx, quit_rx) = std::sync::mpsc::channel::<()>();
    let quit_tx = std::sync::Mutex::new(quit_tx);
    let control = Control::start(options.control, driver.handle(), move || {
        if let Ok(tx) = quit_tx.lock() {
            let _ = tx.send(());
        }
    })?;
    let factory: IClassFactory = Factory { ctx }.into();
    let mut cookies = Vec::new();
    let ours = [("bitsim", install::BITSIM_CLSID)];
    for (name, clsid) in CLSIDS.into_iter().chain(ours) {
        // SAFETY: a live factory; revoked below before it is dropped.
        let cookie = unsafe { CoRegisterClassObject(&clsid, &factory, CLSCTX_LOCAL_SERVER, REGCLS_MULTIPLEUSE) }
            .map_err(|e| format!("CoRegisterClassObject({name}): {e}"))?;
        cookies.push(cookie);
    }
    let _installed = match &options.install {
        Some(command) => Some(Installed::new(command)?),
        None => None,
    };
    println!("bitsim com-server ready control=http://{}", control.addr());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = quit_rx.recv();
    for cookie in cookies {
        // SAFETY: cookies from CoRegisterClassObject above.
        let _ = unsafe { CoRevokeClassObject(cookie) };
    }
    drop(control);
    driver.join()?;
    Ok(())
}
