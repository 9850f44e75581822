//! Delivery Optimization's download API (deliveryoptimization.h), declared by
//! hand: the interfaces are in no `windows` crate release
//! (../shared/reference/clients-and-ecosystem.md §4.3).
//!
//! GUIDs, vtable order, enums and property numbering:
//! ../shared/reference/bits-spec.md §8.2 and §10.2. The layer mirrors the
//! BITS one: raw HRESULTs, plain-Rust values, a `bitsim-` display name on
//! every download, abort on drop, and a sweep for leftovers.

// SDK spellings (DODownloadState_Created, DO_DOWNLOAD_STATUS::BytesTotal...).
#![allow(non_camel_case_types, non_snake_case, non_upper_case_globals)]

use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::ptr::{null, null_mut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use windows::Win32::Foundation::{VARIANT_FALSE, VARIANT_TRUE};
use windows::Win32::System::Com::{
    CoCreateInstance, CoSetProxyBlanket, IEnumUnknown, CLSCTX_LOCAL_SERVER, COLE_DEFAULT_PRINCIPAL,
    EOAC_DYNAMIC_CLOAKING, RPC_C_AUTHN_LEVEL_DEFAULT, RPC_C_IMP_LEVEL_IMPERSONATE,
};
use windows::Win32::System::Variant::{VariantClear, VARIANT, VT_BOOL, VT_BSTR, VT_EMPTY, VT_UI4, VT_UI8, VT_UNKNOWN};
// `IUnknown_Vtbl` is named by the `interface` macro's expansion.
use windows_core::{implement, interface, IUnknown, IUnknown_Vtbl, Interface, BSTR, GUID, HRESULT, PCWSTR};

use crate::bits::{prefixed_display_name, DISPLAY_NAME_PREFIX};
use crate::com::{guard_panic, vcall};
use crate::hr::{Hr, Outcome};
use crate::types::bits_enum;

/// CLSID `DeliveryOptimization` (dosvc), activated with CLSCTX_LOCAL_SERVER.
pub const CLSID_DELIVERY_OPTIMIZATION: GUID = GUID::from_u128(0x5b99fa76_721c_423c_adac_56d03c8a8007);

/// `DODownloadState`.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DODownloadState(pub i32);
pub const DODownloadState_Created: DODownloadState = DODownloadState(0);
pub const DODownloadState_Transferring: DODownloadState = DODownloadState(1);
pub const DODownloadState_Transferred: DODownloadState = DODownloadState(2);
pub const DODownloadState_Finalized: DODownloadState = DODownloadState(3);
pub const DODownloadState_Aborted: DODownloadState = DODownloadState(4);
pub const DODownloadState_Paused: DODownloadState = DODownloadState(5);

/// `DO_DOWNLOAD_STATUS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DO_DOWNLOAD_STATUS {
    pub BytesTotal: u64,
    pub BytesTransferred: u64,
    pub State: DODownloadState,
    pub Error: HRESULT,
    pub ExtendedError: HRESULT,
}

/// `DO_DOWNLOAD_RANGE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DO_DOWNLOAD_RANGE {
    pub Offset: u64,
    pub Length: u64,
}

/// `DO_DOWNLOAD_RANGES_INFO` (variable length: `RangeCount` ranges follow).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DO_DOWNLOAD_RANGES_INFO {
    pub RangeCount: u32,
    pub Ranges: [DO_DOWNLOAD_RANGE; 1],
}

/// `DO_DOWNLOAD_ENUM_CATEGORY`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DO_DOWNLOAD_ENUM_CATEGORY {
    pub Property: DODownloadProperty,
    pub Value: PCWSTR,
}

/// `DODownloadProperty` (numbering per bits-spec §8.2; 26-29 from the
/// windows-rs metadata, 25 NonVolatile from the current SDK).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DODownloadProperty(pub i32);
pub const DODownloadProperty_Id: DODownloadProperty = DODownloadProperty(0);
pub const DODownloadProperty_Uri: DODownloadProperty = DODownloadProperty(1);
pub const DODownloadProperty_ContentId: DODownloadProperty = DODownloadProperty(2);
pub const DODownloadProperty_DisplayName: DODownloadProperty = DODownloadProperty(3);
pub const DODownloadProperty_LocalPath: DODownloadProperty = DODownloadProperty(4);
pub const DODownloadProperty_HttpCustomHeaders: DODownloadProperty = DODownloadProperty(5);
pub const DODownloadProperty_CostPolicy: DODownloadProperty = DODownloadProperty(6);
pub const DODownloadProperty_SecurityFlags: DODownloadProperty = DODownloadProperty(7);
pub const DODownloadProperty_CallbackFreqPercent: DODownloadProperty = DODownloadProperty(8);
pub const DODownloadProperty_CallbackFreqSeconds: DODownloadProperty = DODownloadProperty(9);
pub const DODownloadProperty_NoProgressTimeoutSeconds: DODownloadProperty = DODownloadProperty(10);
pub const DODownloadProperty_ForegroundPriority: DODownloadProperty = DODownloadProperty(11);
pub const DODownloadProperty_BlockingMode: DODownloadProperty = DODownloadProperty(12);
pub const DODownloadProperty_CallbackInterface: DODownloadProperty = DODownloadProperty(13);
pub const DODownloadProperty_StreamInterface: DODownloadProperty = DODownloadProperty(14);
pub const DODownloadProperty_SecurityContext: DODownloadProperty = DODownloadProperty(15);
pub const DODownloadProperty_NetworkToken: DODownloadProperty = DODownloadProperty(16);
pub const DODownloadProperty_CorrelationVector: DODownloadProperty = DODownloadProperty(17);
pub const DODownloadProperty_DecryptionInfo: DODownloadProperty = DODownloadProperty(18);
pub const DODownloadProperty_IntegrityCheckInfo: DODownloadProperty = DODownloadProperty(19);
pub const DODownloadProperty_IntegrityCheckMandatory: DODownloadProperty = DODownloadProperty(20);
pub const DODownloadProperty_TotalSizeBytes: DODownloadProperty = DODownloadProperty(21);
pub const DODownloadProperty_DisallowOnCellular: DODownloadProperty = DODownloadProperty(22);
pub const DODownloadProperty_HttpCustomAuthHeaders: DODownloadProperty = DODownloadProperty(23);
pub const DODownloadProperty_HttpAllowSecureToNonSecureRedirect: DODownloadProperty = DODownloadProperty(24);
pub const DODownloadProperty_NonVolatile: DODownloadProperty = DODownloadProperty(25);
pub const DODownloadProperty_HttpRedirectionTarget: DODownloadProperty = DODownloadProperty(26);
pub const DODownloadProperty_HttpResponseHeaders: DODownloadProperty = DODownloadProperty(27);
pub const DODownloadProperty_HttpServerIPAddress: DODownloadProperty = DODownloadProperty(28);
pub const DODownloadProperty_HttpStatusCode: DODownloadProperty = DODownloadProperty(29);

/// `IDOManager`.
#[interface("400E2D4A-1431-4C1A-A748-39CA472CFDB1")]
pub unsafe trait IDOManager: IUnknown {
    /// `CreateDownload(IDODownload**)`.
    fn CreateDownload(&self, download: *mut *mut c_void) -> HRESULT;
    /// `EnumDownloads(const DO_DOWNLOAD_ENUM_CATEGORY* or NULL, IEnumUnknown**)`.
    fn EnumDownloads(&self, category: *const DO_DOWNLOAD_ENUM_CATEGORY, ppenum: *mut *mut c_void) -> HRESULT;
}

/// `IDODownload`.
#[interface("FBBD7FC0-C147-4727-A38D-827EF071EE77")]
pub unsafe trait IDODownload: IUnknown {
    /// `Start(const DO_DOWNLOAD_RANGES_INFO*)`; NULL = the whole file (also
    /// the resume call).
    fn Start(&self, ranges: *const DO_DOWNLOAD_RANGES_INFO) -> HRESULT;
    fn Pause(&self) -> HRESULT;
    fn Abort(&self) -> HRESULT;
    fn Finalize(&self) -> HRESULT;
    fn GetStatus(&self, status: *mut DO_DOWNLOAD_STATUS) -> HRESULT;
    fn GetProperty(&self, propid: DODownloadProperty, value: *mut VARIANT) -> HRESULT;
    fn SetProperty(&self, propid: DODownloadProperty, value: *const VARIANT) -> HRESULT;
}

/// `IDODownloadStatusCallback`.
#[interface("D166E8E3-A90E-4392-8E87-05E996D3747D")]
pub unsafe trait IDODownloadStatusCallback: IUnknown {
    /// `OnStatusChange(IDODownload*, const DO_DOWNLOAD_STATUS*)`.
    fn OnStatusChange(&self, download: *mut c_void, status: *const DO_DOWNLOAD_STATUS) -> HRESULT;
}

bits_enum! {
    /// `DODownloadState` as a plain-Rust value.
    DoState {
        Created = 0 => "Created",
        Transferring = 1 => "Transferring",
        Transferred = 2 => "Transferred",
        Finalized = 3 => "Finalized",
        Aborted = 4 => "Aborted",
        Paused = 5 => "Paused",
    }
}

impl DoState {
    /// Finalized or Aborted: the download cannot be started again.
    pub const fn is_final(self) -> bool {
        matches!(self, DoState::Finalized | DoState::Aborted)
    }
}

/// `DO_DOWNLOAD_STATUS` as plain Rust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoStatus {
    pub bytes_total: u64,
    pub bytes_transferred: u64,
    pub state: DoState,
    /// Fatal error (FAILED(error) ⇒ the download failed).
    pub error: Hr,
    /// Transient error while Paused (with error == S_OK).
    pub extended_error: Hr,
}

impl From<&DO_DOWNLOAD_STATUS> for DoStatus {
    fn from(s: &DO_DOWNLOAD_STATUS) -> DoStatus {
        DoStatus {
            bytes_total: s.BytesTotal,
            bytes_transferred: s.BytesTransferred,
            state: DoState::from_raw(s.State.0 as u32),
            error: Hr::from(s.Error),
            extended_error: Hr::from(s.ExtendedError),
        }
    }
}

/// An owned VARIANT, cleared (VariantClear) on drop.
pub struct Variant(VARIANT);

/// A VARIANT's value as far as DO properties use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    Empty,
    Str(String),
    U32(u32),
    U64(u64),
    Bool(bool),
    /// Some other VARTYPE (the number).
    Other(u16),
}

impl Variant {
    fn with(vt: windows::Win32::System::Variant::VARENUM, fill: impl FnOnce(&mut VARIANT)) -> Variant {
        let mut v = VARIANT::default();
        // SAFETY: writing the discriminant of a zeroed VARIANT.
        unsafe {
            (*v.Anonymous.Anonymous).vt = vt;
        }
        fill(&mut v);
        Variant(v)
    }

    pub fn empty() -> Variant {
        Variant(VARIANT::default())
    }

    pub fn from_bstr(s: &str) -> Variant {
        Variant::with(VT_BSTR, |v| {
            // SAFETY: vt is VT_BSTR; the BSTR is owned by the VARIANT now.
            unsafe { (*v.Anonymous.Anonymous).Anonymous.bstrVal = ManuallyDrop::new(BSTR::from(s)) }
        })
    }

    pub fn from_u32(x: u32) -> Variant {
        // SAFETY: vt is VT_UI4.
        Variant::with(VT_UI4, |v| unsafe { (*v.Anonymous.Anonymous).Anonymous.ulVal = x })
    }

    pub fn from_bool(b: bool) -> Variant {
        let vb = if b { VARIANT_TRUE } else { VARIANT_FALSE };
        // SAFETY: vt is VT_BOOL.
        Variant::with(VT_BOOL, |v| unsafe { (*v.Anonymous.Anonymous).Anonymous.boolVal = vb })
    }

    pub fn from_unknown(unk: IUnknown) -> Variant {
        Variant::with(VT_UNKNOWN, |v| {
            // SAFETY: vt is VT_UNKNOWN; the reference is owned by the VARIANT.
            unsafe { (*v.Anonymous.Anonymous).Anonymous.punkVal = ManuallyDrop::new(Some(unk)) }
        })
    }

    pub fn value(&self) -> PropValue {
        // SAFETY: reading the union member that `vt` says is live.
        unsafe {
            let inner = &*self.0.Anonymous.Anonymous;
            match inner.vt {
                VT_EMPTY => PropValue::Empty,
                VT_BSTR => PropValue::Str(inner.Anonymous.bstrVal.to_string()),
                VT_UI4 => PropValue::U32(inner.Anonymous.ulVal),
                VT_UI8 => PropValue::U64(inner.Anonymous.ullVal),
                VT_BOOL => PropValue::Bool(inner.Anonymous.boolVal.0 != 0),
                other => PropValue::Other(other.0),
            }
        }
    }
}

impl Drop for Variant {
    fn drop(&mut self) {
        // SAFETY: the VARIANT owns what its vt says; VariantClear releases it.
        let _ = unsafe { VariantClear(&mut self.0) };
    }
}

/// Delivery Optimization's download manager (dosvc).
#[derive(Clone)]
pub struct DoManager {
    mgr: IDOManager,
}

// SAFETY: MTA proxy to the out-of-process DO service (see ComApartment).
unsafe impl Send for DoManager {}
// SAFETY: as above.
unsafe impl Sync for DoManager {}

impl DoManager {
    /// `CoCreateInstance(DeliveryOptimization, CLSCTX_LOCAL_SERVER)`. Needs
    /// Windows 10 1809+ (REGDB_E_CLASSNOTREG 0x80040154 elsewhere, e.g. under
    /// Wine).
    pub fn connect() -> Result<DoManager, Hr> {
        // SAFETY: plain COM activation; the result is an owned interface.
        let mgr: IDOManager =
            unsafe { CoCreateInstance(&CLSID_DELIVERY_OPTIMIZATION, None, CLSCTX_LOCAL_SERVER) }.map_err(Hr::from)?;
        Ok(DoManager { mgr })
    }

    /// `CreateDownload`, then the impersonation proxy blanket Microsoft's
    /// clients set, then DisplayName = `bitsim-<display_name>`. The returned
    /// download aborts on drop unless final.
    pub fn create_download(&self, display_name: &str) -> Outcome<DoDownload> {
        let mut p: *mut c_void = null_mut();
        // SAFETY: out-parameter for one interface pointer.
        let hr = unsafe { self.mgr.CreateDownload(&mut p) }.into();
        let hr: Hr = hr;
        if hr.is_failure() || p.is_null() {
            return Outcome::failure(if hr.is_failure() { hr } else { Hr::E_POINTER });
        }
        // SAFETY: a successful CreateDownload hands us one reference.
        let dl = unsafe { IDODownload::from_raw(p) };
        let download = DoDownload::adopt(dl);
        let name_hr = download.set_display_name(display_name);
        if name_hr.is_failure() {
            // Without the prefix a leftover could not be swept: give up on it.
            return Outcome::failure(name_hr);
        }
        Outcome::success(hr, download)
    }

    /// Every download of this caller (`EnumDownloads(NULL)`).
    pub fn enum_downloads(&self) -> Outcome<Vec<DoDownload>> {
        let mut p: *mut c_void = null_mut();
        // SAFETY: NULL category, out-parameter for one interface pointer.
        let hr: Hr = unsafe { self.mgr.EnumDownloads(null(), &mut p) }.into();
        if hr.is_failure() || p.is_null() {
            return Outcome::failure(if hr.is_failure() { hr } else { Hr::E_POINTER });
        }
        // SAFETY: owned IEnumUnknown.
        let en = unsafe { IEnumUnknown::from_raw(p) };
        let mut out = Vec::new();
        loop {
            let mut item: *mut c_void = null_mut();
            let mut fetched = 0u32;
            // SAFETY: one element requested into `item`.
            let next = unsafe { vcall!(&en, Next, 1, &mut item, &mut fetched) };
            if next.is_failure() {
                return Outcome::failure(next);
            }
            if fetched == 0 || item.is_null() {
                break;
            }
            // SAFETY: Next returned one owned IUnknown.
            let unk = unsafe { IUnknown::from_raw(item) };
            if let Ok(dl) = unk.cast::<IDODownload>() {
                let mut d = DoDownload::adopt(dl);
                // Enumerated downloads are not ours to abort on drop.
                d.keep();
                out.push(d);
            }
            if next == Hr::S_FALSE {
                break;
            }
        }
        Outcome::success(hr, out)
    }

    /// Abort every download of this caller whose DisplayName starts with
    /// `bitsim-` and that is not final. Returns (display name, Abort's HRESULT).
    pub fn sweep(&self) -> Result<Vec<(String, Hr)>, Hr> {
        let mut swept = Vec::new();
        for d in self.enum_downloads().ok()? {
            let name = match d.get_property(DODownloadProperty_DisplayName).ok() {
                Ok(PropValue::Str(s)) => s,
                _ => continue,
            };
            if !name.starts_with(DISPLAY_NAME_PREFIX) {
                continue;
            }
            let final_already = d.status().ok().is_ok_and(|s| s.state.is_final());
            if !final_already {
                swept.push((name, d.abort()));
            }
        }
        Ok(swept)
    }
}

/// One DO download. Aborts on drop unless it reached Finalized/Aborted or
/// [`keep`](DoDownload::keep) was called.
pub struct DoDownload {
    dl: IDODownload,
    /// HRESULT of CoSetProxyBlanket on creation (kept for diagnostics).
    pub blanket_hr: Hr,
    abort_on_drop: bool,
}

// SAFETY: MTA proxy to the out-of-process DO service.
unsafe impl Send for DoDownload {}
// SAFETY: as above.
unsafe impl Sync for DoDownload {}

impl std::fmt::Debug for DoDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoDownload")
            .field("blanket_hr", &self.blanket_hr)
            .field("abort_on_drop", &self.abort_on_drop)
            .finish()
    }
}

impl DoDownload {
    fn adopt(dl: IDODownload) -> DoDownload {
        // DO impersonates the caller (Microsoft's clients set this blanket on
        // every IDODownload; bits-spec §8.2).
        let unk: IUnknown = dl.clone().into();
        // SAFETY: `unk` is a live proxy; constants per the SDK.
        let blanket_hr = match unsafe {
            CoSetProxyBlanket(
                &unk,
                0xFFFF_FFFF, // RPC_C_AUTHN_DEFAULT
                0,           // RPC_C_AUTHZ_NONE
                COLE_DEFAULT_PRINCIPAL,
                RPC_C_AUTHN_LEVEL_DEFAULT,
                RPC_C_IMP_LEVEL_IMPERSONATE,
                None,
                EOAC_DYNAMIC_CLOAKING,
            )
        } {
            Ok(()) => Hr::S_OK,
            Err(e) => Hr::from(e),
        };
        DoDownload {
            dl,
            blanket_hr,
            abort_on_drop: true,
        }
    }

    /// Do not abort this download on drop.
    pub fn keep(&mut self) {
        self.abort_on_drop = false;
    }

    /// `SetProperty(prop, value)`.
    pub fn set_property(&self, prop: DODownloadProperty, value: &Variant) -> Hr {
        // SAFETY: `value` is a valid VARIANT for the call's duration.
        unsafe { self.dl.SetProperty(prop, &value.0) }.into()
    }

    /// `GetProperty(prop)`.
    pub fn get_property(&self, prop: DODownloadProperty) -> Outcome<PropValue> {
        let mut v = Variant::empty();
        // SAFETY: out-parameter VARIANT, cleared by `Variant`'s drop.
        let hr: Hr = unsafe { self.dl.GetProperty(prop, &mut v.0) }.into();
        Outcome::from_call(hr, || v.value())
    }

    /// DisplayName, with the `bitsim-` prefix.
    pub fn set_display_name(&self, name: &str) -> Hr {
        self.set_property(
            DODownloadProperty_DisplayName,
            &Variant::from_bstr(&prefixed_display_name(name)),
        )
    }

    pub fn set_uri(&self, uri: &str) -> Hr {
        self.set_property(DODownloadProperty_Uri, &Variant::from_bstr(uri))
    }

    pub fn set_local_path(&self, path: &str) -> Hr {
        self.set_property(DODownloadProperty_LocalPath, &Variant::from_bstr(path))
    }

    pub fn set_foreground(&self, foreground: bool) -> Hr {
        self.set_property(DODownloadProperty_ForegroundPriority, &Variant::from_bool(foreground))
    }

    /// NoProgressTimeoutSeconds (DO's minimum is 60 s).
    pub fn set_no_progress_timeout(&self, seconds: u32) -> Hr {
        self.set_property(DODownloadProperty_NoProgressTimeoutSeconds, &Variant::from_u32(seconds))
    }

    /// CallbackInterface = the recorder.
    pub fn set_callback(&self, recorder: &DoStatusRecorder) -> Hr {
        let unk: IUnknown = recorder.iface.cast().expect("an #[implement] object is an IUnknown");
        self.set_property(DODownloadProperty_CallbackInterface, &Variant::from_unknown(unk))
    }

    /// The download's Id property.
    pub fn get_id(&self) -> Outcome<String> {
        self.get_property(DODownloadProperty_Id).map(|v| match v {
            PropValue::Str(s) => s,
            other => format!("{other:?}"),
        })
    }

    /// `Start(NULL)`: the whole file; also resumes a paused download.
    pub fn start(&self) -> Hr {
        // SAFETY: NULL ranges.
        unsafe { self.dl.Start(null()) }.into()
    }

    pub fn pause(&self) -> Hr {
        // SAFETY: no arguments.
        unsafe { self.dl.Pause() }.into()
    }

    pub fn abort(&self) -> Hr {
        // SAFETY: no arguments.
        unsafe { self.dl.Abort() }.into()
    }

    pub fn finalize(&self) -> Hr {
        // SAFETY: no arguments.
        unsafe { self.dl.Finalize() }.into()
    }

    /// `GetStatus()`.
    pub fn status(&self) -> Outcome<DoStatus> {
        let mut s = DO_DOWNLOAD_STATUS::default();
        // SAFETY: out-parameter of the right type.
        let hr: Hr = unsafe { self.dl.GetStatus(&mut s) }.into();
        Outcome::from_call(hr, || DoStatus::from(&s))
    }
}

impl Drop for DoDownload {
    fn drop(&mut self) {
        if self.abort_on_drop {
            let final_already = self.status().ok().is_ok_and(|s| s.state.is_final());
            if !final_already {
                let _ = self.abort();
            }
        }
    }
}

/// One `OnStatusChange` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoStatusEvent {
    pub seq: usize,
    /// Time since the recorder's start instant.
    pub at: Duration,
    pub status: DoStatus,
}

struct DoShared {
    t0: Instant,
    events: Mutex<Vec<DoStatusEvent>>,
    changed: Condvar,
}

impl DoShared {
    fn lock(&self) -> MutexGuard<'_, Vec<DoStatusEvent>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Records every `IDODownloadStatusCallback::OnStatusChange`; always answers
/// S_OK (DO does not document a meaning for other return codes).
#[derive(Clone)]
pub struct DoStatusRecorder {
    shared: Arc<DoShared>,
    iface: IDODownloadStatusCallback,
}

// SAFETY: free-threaded `#[implement]` object with Arc<Mutex> state.
unsafe impl Send for DoStatusRecorder {}
// SAFETY: as above.
unsafe impl Sync for DoStatusRecorder {}

impl DoStatusRecorder {
    pub fn new(t0: Instant) -> DoStatusRecorder {
        let shared = Arc::new(DoShared {
            t0,
            events: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        });
        let iface: IDODownloadStatusCallback = DoCallback { shared: shared.clone() }.into();
        DoStatusRecorder { shared, iface }
    }

    pub fn events(&self) -> Vec<DoStatusEvent> {
        self.shared.lock().clone()
    }

    /// Wait until `pred` holds for the recorded events or `timeout` passes.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[DoStatusEvent]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut ev = self.shared.lock();
        loop {
            if pred(&ev) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            ev = self
                .shared
                .changed
                .wait_timeout(ev, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[implement(IDODownloadStatusCallback)]
struct DoCallback {
    shared: Arc<DoShared>,
}

impl IDODownloadStatusCallback_Impl for DoCallback_Impl {
    unsafe fn OnStatusChange(&self, _download: *mut c_void, status: *const DO_DOWNLOAD_STATUS) -> HRESULT {
        let at = self.shared.t0.elapsed();
        guard_panic(|| {
            if status.is_null() {
                return Hr::E_POINTER;
            }
            // SAFETY: DO passes a valid status for the call's duration.
            let status = DoStatus::from(unsafe { &*status });
            let mut ev = self.shared.lock();
            let seq = ev.len();
            ev.push(DoStatusEvent { seq, at, status });
            drop(ev);
            self.shared.changed.notify_all();
            Hr::S_OK
        })
        .into()
    }
}
