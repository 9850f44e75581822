//! COM plumbing shared by the BITS and DO layers.

use std::marker::PhantomData;

use windows::Win32::System::Com::{CoInitializeEx, CoTaskMemFree, CoUninitialize, COINIT_MULTITHREADED};
use windows_core::{HSTRING, PCWSTR, PWSTR};

use crate::hr::Hr;

/// Call a COM method through the vtable and return its raw HRESULT as [`Hr`],
/// success codes included (the `windows` wrappers drop them).
///
/// `vcall!(iface, Method, args...)`; the caller is in an `unsafe` context and
/// guarantees the arguments match the method's ABI.
macro_rules! vcall {
    ($iface:expr, $method:ident $(, $arg:expr)* $(,)?) => {{
        let iface = $iface;
        $crate::hr::Hr::from((::windows_core::Interface::vtable(iface).$method)(
            ::windows_core::Interface::as_raw(iface)
            $(, $arg)*
        ))
    }};
}
pub(crate) use vcall;

/// This thread's membership of the process's multithreaded apartment
/// (`CoInitializeEx(COINIT_MULTITHREADED)`), left on drop (`CoUninitialize`).
///
/// Keep one alive for as long as any COM object of this crate is in use.
/// Objects obtained in the MTA are proxies to the out-of-process BITS / DO
/// service and may be used from any thread that is in the MTA, including
/// threads that never called CoInitializeEx while some thread holds the MTA
/// open (the implicit MTA). The guard itself stays on its thread.
pub struct ComApartment {
    _not_send: PhantomData<*const ()>,
}

impl ComApartment {
    /// Join the MTA. `Err(RPC_E_CHANGED_MODE)` if this thread is already in
    /// an STA.
    pub fn init_mta() -> Result<ComApartment, Hr> {
        // SAFETY: plain Win32 call; balanced by CoUninitialize in Drop, only
        // when it succeeded (S_OK or S_FALSE).
        let hr = Hr::from(unsafe { CoInitializeEx(None, COINIT_MULTITHREADED) });
        hr.ok().map(|_| ComApartment { _not_send: PhantomData })
    }
}

impl Drop for ComApartment {
    fn drop(&mut self) {
        // SAFETY: balances the successful CoInitializeEx of `init_mta`.
        unsafe { CoUninitialize() }
    }
}

/// A null-terminated UTF-16 copy of `s`, alive as long as the returned value.
pub(crate) struct Wide(HSTRING);

impl Wide {
    pub(crate) fn new(s: &str) -> Wide {
        Wide(HSTRING::from(s))
    }

    pub(crate) fn pcwstr(&self) -> PCWSTR {
        PCWSTR(self.0.as_ptr())
    }
}

/// Take ownership of a CoTaskMemAlloc'd string returned by a COM getter.
///
/// # Safety
/// `p` is null or a valid null-terminated string allocated with
/// CoTaskMemAlloc that nobody else frees.
pub(crate) unsafe fn take_pwstr(p: PWSTR) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract above.
    unsafe {
        let s = String::from_utf16_lossy(p.as_wide());
        CoTaskMemFree(Some(p.0 as *const _));
        Some(s)
    }
}

/// `catch_unwind` for COM entry points: a panic must never unwind into the
/// caller's (the service's RPC runtime's) frames; it becomes E_FAIL.
pub(crate) fn guard_panic(f: impl FnOnce() -> Hr) -> Hr {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(Hr::E_FAIL)
}

/// Whether this process runs under Wine (its ntdll exports `wine_get_version`).
/// Only for working around Wine defects that would kill the process; behaviour
/// differences stay differences (fixtures/conformance/wine-qmgr.json).
pub fn running_under_wine() -> bool {
    #[link(name = "kernel32")]
    extern "system" {
        fn GetModuleHandleA(name: *const u8) -> *mut std::ffi::c_void;
        fn GetProcAddress(module: *mut std::ffi::c_void, name: *const u8) -> *mut std::ffi::c_void;
    }
    static UNDER_WINE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *UNDER_WINE.get_or_init(|| {
        // SAFETY: NUL-terminated names; ntdll is loaded in every process and the
        // handle is not freed; the returned address is only tested for NULL.
        unsafe {
            let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
            !ntdll.is_null() && !GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()).is_null()
        }
    })
}
