//! The COM server: class objects for BITS's CLSIDs and DO's
//! (`CLSID_DeliveryOptimization`), the objects behind them (`objects`), and
//! the client side of notifications (`host`).
//!
//! One process, one driver per service: BITS's classes reach the BITS
//! driver, DO's class a second driver running the model's DO flavor (its own
//! jobs, clock and notification slots: DO is another service on Windows).
//! The objects are the same code for both; every answer is the flavor's
//! model's.

mod host;
pub mod install;
mod objects;
mod strings;

use crate::control::{Control, Services};
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
    /// The BITS service (`CLSID_BackgroundCopyManager` and the versioned CLSIDs).
    pub driver: DriverConfig,
    /// The Delivery Optimization service (`CLSID_DeliveryOptimization`), if
    /// served: a driver config with the DO flavor's profile.
    pub delivery_optimization: Option<DriverConfig>,
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

/// Delivery Optimization's BITS-compatible class: `CoCreateInstance(
/// CLSID_DeliveryOptimization, …, CLSCTX_LOCAL_SERVER, IID_IBackgroundCopyManager)`
/// (ref: Delivery Optimization IBackgroundCopyManager, Microsoft Learn; the
/// same GUID as bitsim-windows' `CLSID_DELIVERY_OPTIMIZATION`).
pub const CLSID_DELIVERY_OPTIMIZATION: GUID = GUID::from_u128(0x5b99fa76_721c_423c_adac_56d03c8a8007);

/// Every BITS manager CLSID.
pub fn bits_clsids() -> Vec<GUID> {
    CLSIDS.iter().map(|(_, c)| *c).collect()
}

/// What the per-user override redirects: each CLSID a client activates, and
/// bitsim's class it is treated as (BITS's to [`install::BITSIM_CLSID`],
/// DO's to [`install::BITSIM_DO_CLSID`]).
pub fn override_map(with_do: bool) -> Vec<(GUID, GUID)> {
    let mut map: Vec<(GUID, GUID)> = bits_clsids().into_iter().map(|c| (c, install::BITSIM_CLSID)).collect();
    if with_do {
        map.push((CLSID_DELIVERY_OPTIMIZATION, install::BITSIM_DO_CLSID));
    }
    map
}

/// The per-user override, removed when the server ends (also on a panic's
/// unwinding); see [`install`] for what happens after a crash.
struct Installed(Vec<(GUID, GUID)>);

impl Installed {
    fn new(command: &str, map: Vec<(GUID, GUID)>) -> Result<Installed, String> {
        install::install(&map, command, std::process::id())?;
        Ok(Installed(map))
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        install::uninstall(&self.0);
    }
}

/// One service: its driver and the COM host that calls its clients back.
struct Served {
    driver: Driver,
    factory: IClassFactory,
}

impl Served {
    fn start(config: DriverConfig) -> Result<Served, Box<dyn std::error::Error>> {
        let host = ComHost::new();
        let driver = Driver::start(config, host.clone())?;
        host.set_handle(driver.handle());
        let ctx = host.ctx().ok_or("the COM host did not start")?;
        let factory: IClassFactory = Factory { ctx }.into();
        Ok(Served { driver, factory })
    }
}

/// Runs the COM server until `POST /_bitsim/quit` on the control endpoint.
/// Prints one line when ready: `bitsim com-server ready control=http://ADDR`.
pub fn run_server(options: ServerOptions) -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: once, on this thread, before any other COM call.
    unsafe { CoInitializeEx(None, COINIT_MULTITHREADED) }.ok()?;
    let bits = Served::start(options.driver.clone())?;
    let dosvc = match options.delivery_optimization.clone() {
        Some(config) => Some(Served::start(config)?),
        None => None,
    };
    let mut services = Services::bits(bits.driver.handle());
    if let Some(d) = &dosvc {
        services = services.with(bitsim_model::Flavor::DeliveryOptimization, d.driver.handle());
    }
    let (quit_tx, quit_rx) = std::sync::mpsc::channel::<()>();
    let quit_tx = std::sync::Mutex::new(quit_tx);
    let control = Control::start(options.control, services, move || {
        if let Ok(tx) = quit_tx.lock() {
            let _ = tx.send(());
        }
    })?;
    // Each class with the factory of the service it belongs to.
    let mut classes: Vec<(&str, GUID, &IClassFactory)> = CLSIDS
        .into_iter()
        .chain([("bitsim", install::BITSIM_CLSID)])
        .map(|(name, clsid)| (name, clsid, &bits.factory))
        .collect();
    if let Some(d) = &dosvc {
        classes.push(("DeliveryOptimization", CLSID_DELIVERY_OPTIMIZATION, &d.factory));
        classes.push(("bitsim-do", install::BITSIM_DO_CLSID, &d.factory));
    }
    let mut cookies = Vec::new();
    for (name, clsid, factory) in classes {
        // SAFETY: a live factory; revoked below before it is dropped.
        let cookie = unsafe { CoRegisterClassObject(&clsid, factory, CLSCTX_LOCAL_SERVER, REGCLS_MULTIPLEUSE) }
            .map_err(|e| format!("CoRegisterClassObject({name}): {e}"))?;
        cookies.push(cookie);
    }
    let _installed = match &options.install {
        Some(command) => Some(Installed::new(command, override_map(dosvc.is_some()))?),
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
    bits.driver.join()?;
    if let Some(d) = dosvc {
        d.driver.join()?;
    }
    Ok(())
}
