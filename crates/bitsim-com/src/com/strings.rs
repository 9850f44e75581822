//! Wide strings across the COM boundary.

use windows::Win32::Foundation::E_OUTOFMEMORY;
use windows::Win32::System::Com::CoTaskMemAlloc;
use windows_core::{PCWSTR, PWSTR};

/// A CoTaskMemAlloc'd copy of `s` (the caller frees it with CoTaskMemFree).
pub(crate) fn co_string(s: &str) -> windows_core::Result<PWSTR> {
    let wide: Vec<u16> = s.encode_utf16().chain(std::iter::once(0)).collect();
    // SAFETY: a fresh block of the right size, filled before it is handed out.
    let p = unsafe { CoTaskMemAlloc(wide.len() * 2) } as *mut u16;
    if p.is_null() {
        return Err(E_OUTOFMEMORY.into());
    }
    // SAFETY: p has room for wide.len() u16s.
    unsafe { std::ptr::copy_nonoverlapping(wide.as_ptr(), p, wide.len()) };
    Ok(PWSTR(p))
}

/// A client's string; `None` for NULL (unpaired surrogates become U+FFFD).
pub(crate) fn from_pcwstr(p: &PCWSTR) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated wide string from the RPC stub.
    Some(String::from_utf16_lossy(unsafe { p.as_wide() }))
}
