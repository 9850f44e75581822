//! Raw HRESULTs, success codes included.
//!
//! The `windows` crate turns every HRESULT into `Result<()>`, which drops
//! success codes such as `BG_S_PARTIAL_COMPLETE` (Complete) and
//! `BG_S_UNABLE_TO_DELETE_FILES` (Cancel). A conformance trace needs them, so
//! this crate calls the vtables itself and hands back the HRESULT as it came.

use std::fmt;

/// An HRESULT exactly as the service returned it (bit pattern as `u32`, the
/// same representation as `bitsim_model::Hresult`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Hr(pub u32);

macro_rules! named_hresults {
    ($($name:ident = $value:expr,)*) => {
        impl Hr {
            $(pub const $name: Hr = Hr($value);)*

            /// The symbolic name of a well-known code, if this is one.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

// Values: ../shared/reference/bits-spec.md §2.3 (BG_*) and §8.1 (DO_E_*),
// checked against the windows 0.62.2 constants; Win32 codes from winerror.h.
named_hresults! {
    S_OK = 0x0000_0000,
    S_FALSE = 0x0000_0001,
    BG_S_PARTIAL_COMPLETE = 0x0020_0017,
    BG_S_UNABLE_TO_DELETE_FILES = 0x0020_001A,
    E_NOTIMPL = 0x8000_4001,
    E_NOINTERFACE = 0x8000_4002,
    E_POINTER = 0x8000_4003,
    E_ABORT = 0x8000_4004,
    E_FAIL = 0x8000_4005,
    E_UNEXPECTED = 0x8000_FFFF,
    E_ACCESSDENIED = 0x8007_0005,
    E_OUTOFMEMORY = 0x8007_000E,
    E_INVALIDARG = 0x8007_0057,
    RPC_E_CHANGED_MODE = 0x8001_0106,
    RPC_E_DISCONNECTED = 0x8001_0108,
    REGDB_E_CLASSNOTREG = 0x8004_0154,
    RPC_X_NULL_REF_POINTER = 0x8007_06F4,
    ERROR_SERVICE_DISABLED = 0x8007_0422,
    ERROR_NO_SUCH_LOGON_SESSION = 0x8007_0520,
    ERROR_NOT_LOGGED_ON = 0x8007_04DD,
    BG_E_NOT_FOUND = 0x8020_0001,
    BG_E_INVALID_STATE = 0x8020_0002,
    BG_E_EMPTY = 0x8020_0003,
    BG_E_FILE_NOT_AVAILABLE = 0x8020_0004,
    BG_E_PROTOCOL_NOT_AVAILABLE = 0x8020_0005,
    BG_E_DESTINATION_LOCKED = 0x8020_000D,
    BG_E_ERROR_INFORMATION_UNAVAILABLE = 0x8020_000F,
    BG_E_NO_PROGRESS = 0x8020_0024,
    BG_E_STRING_TOO_LONG = 0x8020_0021,
    BG_E_TOO_LARGE = 0x8020_0020,
    BG_E_INSUFFICIENT_RANGE_SUPPORT = 0x8020_0013,
    BG_E_HTTP_ERROR_400 = 0x8019_0190,
    BG_E_HTTP_ERROR_401 = 0x8019_0191,
    BG_E_HTTP_ERROR_403 = 0x8019_0193,
    BG_E_HTTP_ERROR_404 = 0x8019_0194,
    BG_E_HTTP_ERROR_500 = 0x8019_01F4,
    BG_E_HTTP_ERROR_503 = 0x8019_01F7,
    DO_E_NO_SERVICE = 0x80D0_1001,
    DO_E_DOWNLOAD_NO_PROGRESS = 0x80D0_2002,
    DO_E_JOB_NOT_FOUND = 0x80D0_2003,
    DO_E_UNKNOWN_PROPERTY_ID = 0x80D0_2011,
    DO_E_READ_ONLY_PROPERTY = 0x80D0_2012,
    DO_E_INVALID_STATE = 0x80D0_2013,
    DO_E_ERROR_INFORMATION_UNAVAILABLE = 0x80D0_2014,
    E_NOT_SET = 0x8007_0490,
}

impl Hr {
    /// `SUCCEEDED(hr)`: the severity bit is clear.
    pub const fn is_success(self) -> bool {
        self.0 & 0x8000_0000 == 0
    }

    /// `FAILED(hr)`.
    pub const fn is_failure(self) -> bool {
        !self.is_success()
    }

    /// The same bits as a signed `HRESULT`.
    pub const fn as_i32(self) -> i32 {
        self.0 as i32
    }

    /// `Ok(self)` for success codes (S_OK, S_FALSE, BG_S_*), `Err(self)` for
    /// failures.
    pub const fn ok(self) -> Result<Hr, Hr> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(self)
        }
    }

    /// `HRESULT_FROM_WIN32(code)`.
    pub const fn from_win32(code: u32) -> Hr {
        if code == 0 {
            Hr::S_OK
        } else {
            Hr((code & 0xFFFF) | 0x8007_0000)
        }
    }
}

impl From<windows_core::HRESULT> for Hr {
    fn from(hr: windows_core::HRESULT) -> Hr {
        Hr(hr.0 as u32)
    }
}

impl From<Hr> for windows_core::HRESULT {
    fn from(hr: Hr) -> windows_core::HRESULT {
        windows_core::HRESULT(hr.0 as i32)
    }
}

impl From<&windows_core::Error> for Hr {
    fn from(e: &windows_core::Error) -> Hr {
        Hr::from(e.code())
    }
}

impl From<windows_core::Error> for Hr {
    fn from(e: windows_core::Error) -> Hr {
        Hr::from(e.code())
    }
}

impl fmt::Debug for Hr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `0x80200002 (BG_E_INVALID_STATE)`, or just the hex for unnamed codes.
impl fmt::Display for Hr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "0x{:08X} ({name})", self.0),
            None => write!(f, "0x{:08X}", self.0),
        }
    }
}

impl std::error::Error for Hr {}

/// What a COM getter returned: the raw HRESULT, and the value when the call
/// succeeded (a value is only read when `SUCCEEDED(hr)`).
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    pub hr: Hr,
    pub value: Option<T>,
}

impl<T> Outcome<T> {
    pub(crate) fn success(hr: Hr, value: T) -> Self {
        Outcome { hr, value: Some(value) }
    }

    pub(crate) fn failure(hr: Hr) -> Self {
        Outcome { hr, value: None }
    }

    /// From a raw HRESULT and a closure that reads the out-parameter, called
    /// only on success.
    pub(crate) fn from_call(hr: Hr, read: impl FnOnce() -> T) -> Self {
        if hr.is_success() {
            Outcome::success(hr, read())
        } else {
            Outcome::failure(hr)
        }
    }

    /// The value, or the failing HRESULT.
    pub fn ok(self) -> Result<T, Hr> {
        match self.value {
            Some(v) if self.hr.is_success() => Ok(v),
            _ => Err(if self.hr.is_success() {
                Hr::E_UNEXPECTED
            } else {
                self.hr
            }),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Outcome<U> {
        Outcome {
            hr: self.hr,
            value: self.value.map(f),
        }
    }

    pub fn as_ref(&self) -> Outcome<&T> {
        Outcome {
            hr: self.hr,
            value: self.value.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_known_codes_and_keeps_the_bits() {
        assert_eq!(Hr::BG_E_INVALID_STATE.to_string(), "0x80200002 (BG_E_INVALID_STATE)");
        assert_eq!(Hr(0x1234_5678).to_string(), "0x12345678");
        assert_eq!(
            Hr::BG_S_PARTIAL_COMPLETE.to_string(),
            "0x00200017 (BG_S_PARTIAL_COMPLETE)"
        );
    }

    #[test]
    fn success_codes_are_successes() {
        for hr in [
            Hr::S_OK,
            Hr::S_FALSE,
            Hr::BG_S_PARTIAL_COMPLETE,
            Hr::BG_S_UNABLE_TO_DELETE_FILES,
        ] {
            assert!(hr.is_success(), "{hr}");
            assert_eq!(hr.ok(), Ok(hr));
        }
        assert_eq!(Hr::E_FAIL.ok(), Err(Hr::E_FAIL));
        assert!(Hr::BG_E_HTTP_ERROR_404.is_failure());
    }

    #[test]
    fn win32_codes_map_like_hresult_from_win32() {
        // ERROR_NOT_LOGGED_ON = 1245: what BITS returns without an interactive logon.
        assert_eq!(Hr::from_win32(1245), Hr::ERROR_NOT_LOGGED_ON);
        assert_eq!(Hr::from_win32(0), Hr::S_OK);
        assert_eq!(Hr::from(windows_core::HRESULT(-2147024891)), Hr::E_ACCESSDENIED);
        assert_eq!(windows_core::HRESULT::from(Hr::E_FAIL).0, 0x8000_4005_u32 as i32);
    }

    #[test]
    fn outcome_ok_needs_success_and_a_value() {
        assert_eq!(Outcome::success(Hr::S_FALSE, 3).ok(), Ok(3));
        assert_eq!(Outcome::<u32>::failure(Hr::E_NOTIMPL).ok(), Err(Hr::E_NOTIMPL));
        assert_eq!(Outcome::from_call(Hr::E_FAIL, || 1).value, None);
        assert_eq!(Outcome::from_call(Hr::S_OK, || 1).map(|v| v + 1).ok(), Ok(2));
    }
}
