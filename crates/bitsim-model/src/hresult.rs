//! `Hresult`: the 32-bit status code every BITS / DO call and job error uses.
//!
//! ref: bits-spec §2.3 (BG_E_*/BG_S_* values), §2.4 (HTTP statuses as
//! 0x80190000 + status), §8.1 (DO_E_* values).

use std::fmt;

/// A COM HRESULT. Negative (high bit set) means failure.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Hresult(pub u32);

/// Declares the named constants once and derives the name lookup from the same list.
macro_rules! hresults {
    ($( $(#[$m:meta])* $name:ident = $value:expr; )*) => {
        impl Hresult {
            $( $(#[$m])* pub const $name: Hresult = Hresult($value); )*
            /// Every named constant, for lookup by name or value.
            pub const NAMED: &'static [(&'static str, Hresult)] = &[ $( (stringify!($name), Hresult($value)), )* ];
        }
    };
}

hresults! {
    S_OK = 0x0000_0000;
    S_FALSE = 0x0000_0001;
    E_NOTIMPL = 0x8000_4001;
    E_FAIL = 0x8000_4005;
    E_ABORT = 0x8000_4004;
    E_INVALIDARG = 0x8007_0057;
    E_ACCESSDENIED = 0x8007_0005;
    E_UNEXPECTED = 0x8000_FFFF;
    /// The callback's process went away (RPC_E_DISCONNECTED).
    RPC_E_DISCONNECTED = 0x8001_0108;
    /// HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND).
    HRESULT_FILE_NOT_FOUND = 0x8007_0002;
    /// HRESULT_FROM_WIN32(ERROR_PATH_NOT_FOUND).
    HRESULT_PATH_NOT_FOUND = 0x8007_0003;
    /// HRESULT_FROM_WIN32(ERROR_NOT_LOGGED_ON): no interactive logon (ref: bits-http §2.4).
    HRESULT_NOT_LOGGED_ON = 0x8007_04DD;
    /// HRESULT_FROM_WIN32(ERROR_SHARING_VIOLATION): the file is open elsewhere.
    HRESULT_SHARING_VIOLATION = 0x8007_0020;
    // WinHTTP failures as HRESULT_FROM_WIN32 (ref: bits-http §2.4).
    WINHTTP_TIMEOUT = 0x8007_2EE2;
    WINHTTP_NAME_NOT_RESOLVED = 0x8007_2EE7;
    WINHTTP_CANNOT_CONNECT = 0x8007_2EFD;
    WINHTTP_CONNECTION_ERROR = 0x8007_2EFE;
    WINHTTP_INVALID_SERVER_RESPONSE = 0x8007_2F78;
    WINHTTP_REDIRECT_FAILED = 0x8007_2F7C;
    WINHTTP_SECURE_FAILURE = 0x8007_2F8F;

    BG_S_ERROR_CONTEXT_NONE = 0x0020_0006;
    BG_S_PARTIAL_COMPLETE = 0x0020_0017;
    BG_S_UNABLE_TO_DELETE_FILES = 0x0020_001A;
    BG_S_PROXY_CHANGED = 0x0020_002A;
    BG_S_OVERRIDDEN_BY_POLICY = 0x0020_0055;
    BG_E_NOT_FOUND = 0x8020_0001;
    BG_E_INVALID_STATE = 0x8020_0002;
    BG_E_EMPTY = 0x8020_0003;
    BG_E_FILE_NOT_AVAILABLE = 0x8020_0004;
    BG_E_PROTOCOL_NOT_AVAILABLE = 0x8020_0005;
    BG_E_ERROR_CONTEXT_UNKNOWN = 0x8020_0007;
    BG_E_ERROR_CONTEXT_GENERAL_QUEUE_MANAGER = 0x8020_0008;
    BG_E_ERROR_CONTEXT_LOCAL_FILE = 0x8020_0009;
    BG_E_ERROR_CONTEXT_REMOTE_FILE = 0x8020_000A;
    BG_E_ERROR_CONTEXT_GENERAL_TRANSPORT = 0x8020_000B;
    BG_E_ERROR_CONTEXT_QUEUE_MANAGER_NOTIFICATION = 0x8020_000C;
    BG_E_DESTINATION_LOCKED = 0x8020_000D;
    BG_E_VOLUME_CHANGED = 0x8020_000E;
    BG_E_ERROR_INFORMATION_UNAVAILABLE = 0x8020_000F;
    BG_E_NETWORK_DISCONNECTED = 0x8020_0010;
    BG_E_MISSING_FILE_SIZE = 0x8020_0011;
    BG_E_INSUFFICIENT_HTTP_SUPPORT = 0x8020_0012;
    BG_E_INSUFFICIENT_RANGE_SUPPORT = 0x8020_0013;
    BG_E_REMOTE_NOT_SUPPORTED = 0x8020_0014;
    BG_E_NEW_OWNER_DIFF_MAPPING = 0x8020_0015;
    BG_E_NEW_OWNER_NO_FILE_ACCESS = 0x8020_0016;
    BG_E_PROXY_LIST_TOO_LARGE = 0x8020_0018;
    BG_E_PROXY_BYPASS_LIST_TOO_LARGE = 0x8020_0019;
    BG_E_INVALID_SERVER_RESPONSE = 0x8020_001B;
    BG_E_TOO_MANY_FILES = 0x8020_001C;
    BG_E_LOCAL_FILE_CHANGED = 0x8020_001D;
    BG_E_ERROR_CONTEXT_REMOTE_APPLICATION = 0x8020_001E;
    BG_E_SESSION_NOT_FOUND = 0x8020_001F;
    BG_E_TOO_LARGE = 0x8020_0020;
    BG_E_STRING_TOO_LONG = 0x8020_0021;
    BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH = 0x8020_0022;
    BG_E_SERVER_EXECUTE_ENABLE = 0x8020_0023;
    BG_E_NO_PROGRESS = 0x8020_0024;
    BG_E_USERNAME_TOO_LARGE = 0x8020_0025;
    BG_E_PASSWORD_TOO_LARGE = 0x8020_0026;
    BG_E_INVALID_AUTH_TARGET = 0x8020_0027;
    BG_E_INVALID_AUTH_SCHEME = 0x8020_0028;
    BG_E_FILE_NOT_FOUND = 0x8020_0029;
    BG_E_INVALID_RANGE = 0x8020_002B;
    BG_E_OVERLAPPING_RANGES = 0x8020_002C;
    BG_E_CONNECT_FAILURE = 0x8020_002D;
    BG_E_CONNECTION_CLOSED = 0x8020_002E;
    BG_E_BLOCKED_BY_POLICY = 0x8020_003E;
    BG_E_INVALID_PROXY_INFO = 0x8020_003F;
    BG_E_INVALID_CREDENTIALS = 0x8020_0040;
    BG_E_INVALID_HASH_ALGORITHM = 0x8020_0041;
    BG_E_RECORD_DELETED = 0x8020_0042;
    BG_E_COMMIT_IN_PROGRESS = 0x8020_0043;
    BG_E_DISCOVERY_IN_PROGRESS = 0x8020_0044;
    BG_E_UPNP_ERROR = 0x8020_0045;
    BG_E_TEST_OPTION_BLOCKED_DOWNLOAD = 0x8020_0046;
    BG_E_PEERCACHING_DISABLED = 0x8020_0047;
    BG_E_BUSYCACHERECORD = 0x8020_0048;
    BG_E_TOO_MANY_JOBS_PER_USER = 0x8020_0049;
    BG_E_TOO_MANY_JOBS_PER_MACHINE = 0x8020_0050;
    BG_E_TOO_MANY_FILES_IN_JOB = 0x8020_0051;
    BG_E_TOO_MANY_RANGES_IN_FILE = 0x8020_0052;
    BG_E_VALIDATION_FAILED = 0x8020_0053;
    BG_E_MAXDOWNLOAD_TIMEOUT = 0x8020_0054;
    BG_E_TOKEN_REQUIRED = 0x8020_0056;
    BG_E_UNKNOWN_PROPERTY_ID = 0x8020_0057;
    BG_E_READ_ONLY_PROPERTY = 0x8020_0058;
    BG_E_BLOCKED_BY_COST_TRANSFER_POLICY = 0x8020_0059;
    BG_E_PROPERTY_SUPPORTED_FOR_DOWNLOAD_JOBS_ONLY = 0x8020_0060;
    BG_E_READ_ONLY_PROPERTY_AFTER_ADDFILE = 0x8020_0061;
    BG_E_READ_ONLY_PROPERTY_AFTER_RESUME = 0x8020_0062;
    BG_E_MAX_DOWNLOAD_SIZE_INVALID_VALUE = 0x8020_0063;
    BG_E_MAX_DOWNLOAD_SIZE_LIMIT_REACHED = 0x8020_0064;
    BG_E_STANDBY_MODE = 0x8020_0065;
    BG_E_USE_STORED_CREDENTIALS_NOT_SUPPORTED = 0x8020_0066;
    BG_E_BLOCKED_BY_BATTERY_POLICY = 0x8020_0067;
    BG_E_BLOCKED_BY_BATTERY_SAVER = 0x8020_0068;
    BG_E_WATCHDOG_TIMEOUT = 0x8020_0069;
    BG_E_APP_PACKAGE_NOT_FOUND = 0x8020_006A;
    BG_E_APP_PACKAGE_SCENARIO_NOT_SUPPORTED = 0x8020_006B;
    BG_E_DATABASE_CORRUPT = 0x8020_006C;
    BG_E_RANDOM_ACCESS_NOT_SUPPORTED = 0x8020_006D;
    BG_E_BLOCKED_BY_BACKGROUND_ACCESS_POLICY = 0x8020_006E;
    BG_E_BLOCKED_BY_GAME_MODE = 0x8020_006F;
    BG_E_BLOCKED_BY_SYSTEM_POLICY = 0x8020_0070;
    BG_E_NOT_SUPPORTED_WITH_CUSTOM_HTTP_METHOD = 0x8020_0071;
    BG_E_UNSUPPORTED_JOB_CONFIGURATION = 0x8020_0072;
    BG_E_REMOTE_FILE_CHANGED = 0x8020_0073;
    BG_E_SERVER_CERT_VALIDATION_INTERFACE_REQUIRED = 0x8020_0074;
    BG_E_READ_ONLY_WHEN_JOB_ACTIVE = 0x8020_0075;
    BG_E_ERROR_CONTEXT_SERVER_CERTIFICATE_CALLBACK = 0x8020_0076;

    // BG_E_HTTP_ERROR_nnn = 0x80190000 + nnn: the 41 named constants (ref: bits-spec §2.4).
    BG_E_HTTP_ERROR_100 = 0x8019_0064;
    BG_E_HTTP_ERROR_101 = 0x8019_0065;
    BG_E_HTTP_ERROR_200 = 0x8019_00C8;
    BG_E_HTTP_ERROR_201 = 0x8019_00C9;
    BG_E_HTTP_ERROR_202 = 0x8019_00CA;
    BG_E_HTTP_ERROR_203 = 0x8019_00CB;
    BG_E_HTTP_ERROR_204 = 0x8019_00CC;
    BG_E_HTTP_ERROR_205 = 0x8019_00CD;
    BG_E_HTTP_ERROR_206 = 0x8019_00CE;
    BG_E_HTTP_ERROR_300 = 0x8019_012C;
    BG_E_HTTP_ERROR_301 = 0x8019_012D;
    BG_E_HTTP_ERROR_302 = 0x8019_012E;
    BG_E_HTTP_ERROR_303 = 0x8019_012F;
    BG_E_HTTP_ERROR_304 = 0x8019_0130;
    BG_E_HTTP_ERROR_305 = 0x8019_0131;
    BG_E_HTTP_ERROR_307 = 0x8019_0133;
    BG_E_HTTP_ERROR_400 = 0x8019_0190;
    BG_E_HTTP_ERROR_401 = 0x8019_0191;
    BG_E_HTTP_ERROR_402 = 0x8019_0192;
    BG_E_HTTP_ERROR_403 = 0x8019_0193;
    BG_E_HTTP_ERROR_404 = 0x8019_0194;
    BG_E_HTTP_ERROR_405 = 0x8019_0195;
    BG_E_HTTP_ERROR_406 = 0x8019_0196;
    BG_E_HTTP_ERROR_407 = 0x8019_0197;
    BG_E_HTTP_ERROR_408 = 0x8019_0198;
    BG_E_HTTP_ERROR_409 = 0x8019_0199;
    BG_E_HTTP_ERROR_410 = 0x8019_019A;
    BG_E_HTTP_ERROR_411 = 0x8019_019B;
    BG_E_HTTP_ERROR_412 = 0x8019_019C;
    BG_E_HTTP_ERROR_413 = 0x8019_019D;
    BG_E_HTTP_ERROR_414 = 0x8019_019E;
    BG_E_HTTP_ERROR_415 = 0x8019_019F;
    BG_E_HTTP_ERROR_416 = 0x8019_01A0;
    BG_E_HTTP_ERROR_417 = 0x8019_01A1;
    BG_E_HTTP_ERROR_449 = 0x8019_01C1;
    BG_E_HTTP_ERROR_500 = 0x8019_01F4;
    BG_E_HTTP_ERROR_501 = 0x8019_01F5;
    BG_E_HTTP_ERROR_502 = 0x8019_01F6;
    BG_E_HTTP_ERROR_503 = 0x8019_01F7;
    BG_E_HTTP_ERROR_504 = 0x8019_01F8;
    BG_E_HTTP_ERROR_505 = 0x8019_01F9;

    DO_E_NO_SERVICE = 0x80D0_1001;
    DO_E_DOWNLOAD_NO_PROGRESS = 0x80D0_2002;
    DO_E_JOB_NOT_FOUND = 0x80D0_2003;
    DO_E_JOB_EMPTY = 0x80D0_2004;
    DO_E_LOCALPATH_NOT_SET = 0x80D0_200D;
    DO_E_FILE_NOT_AVAILABLE = 0x80D0_2010;
    DO_E_UNKNOWN_PROPERTY_ID = 0x80D0_2011;
    DO_E_READ_ONLY_PROPERTY = 0x80D0_2012;
    DO_E_INVALID_STATE = 0x80D0_2013;
    DO_E_ERROR_INFORMATION_UNAVAILABLE = 0x80D0_2014;
    DO_E_NO_DOWNLOAD_EXTSETTINGS = 0x80D0_3002;
    DO_E_BLOCKED_BY_COST_TRANSFER_POLICY = 0x80D0_3801;
    DO_E_BLOCKED_BY_CELLULAR_POLICY = 0x80D0_3803;
    DO_E_BLOCKED_BY_POWER_STATE = 0x80D0_3804;
    DO_E_BLOCKED_BY_NO_NETWORK = 0x80D0_3805;
    DO_E_BLOCKED_BY_VPN_POLICY = 0x80D0_3807;
    DO_E_BLOCKED_BY_CRITICAL_MEMORY_USAGE = 0x80D0_3808;
    DO_E_HTTP_BLOCKSIZE_MISMATCH = 0x80D0_5001;
    DO_E_INVALID_RANGE = 0x80D0_5010;
    DO_E_INSUFFICIENT_RANGE_SUPPORT = 0x80D0_5011;
    DO_E_OVERLAPPING_RANGES = 0x80D0_5012;
    DO_E_FATAL_CORE_ERROR = 0x80D0_6802;
}

/// FACILITY_HTTP base: `BG_E_HTTP_ERROR_nnn = 0x80190000 + nnn` (ref: bits-spec §2.4).
const HTTP_BASE: u32 = 0x8019_0000;

impl Hresult {
    /// `BG_E_HTTP_ERROR_<status>`: 0x80190000 + status (ref: bits-spec §2.4).
    ///
    /// ```
    /// use bitsim_model::Hresult;
    /// assert_eq!(Hresult::http(403), Hresult(0x8019_0193));
    /// assert_eq!(Hresult::http(403).to_string(), "0x80190193 (BG_E_HTTP_ERROR_403)");
    /// ```
    pub const fn http(status: u16) -> Hresult {
        Hresult(HTTP_BASE + status as u32)
    }

    /// The HTTP status if this is a `BG_E_HTTP_ERROR_nnn`.
    pub const fn http_status(self) -> Option<u16> {
        if self.0 >= HTTP_BASE + 100 && self.0 < HTTP_BASE + 600 {
            Some((self.0 - HTTP_BASE) as u16)
        } else {
            None
        }
    }

    /// SUCCEEDED(hr): the high bit is clear.
    pub const fn is_success(self) -> bool {
        self.0 & 0x8000_0000 == 0
    }

    /// FAILED(hr).
    pub const fn is_failure(self) -> bool {
        !self.is_success()
    }

    /// The symbolic name, if the value has one (`BG_E_HTTP_ERROR_nnn` included).
    pub fn name(self) -> Option<String> {
        if let Some((name, _)) = Self::NAMED.iter().find(|(_, v)| *v == self) {
            return Some((*name).to_string());
        }
        self.http_status().map(|s| format!("BG_E_HTTP_ERROR_{s}"))
    }

    /// Parses `S_OK`, `BG_E_HTTP_ERROR_403`, `0x80200002` or a decimal (possibly negative) value.
    pub fn parse(text: &str) -> Option<Hresult> {
        let text = text.trim();
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            return u32::from_str_radix(hex, 16).ok().map(Hresult);
        }
        if let Some(status) = text.strip_prefix("BG_E_HTTP_ERROR_") {
            return status
                .parse::<u16>()
                .ok()
                .filter(|s| (100..600).contains(s))
                .map(Hresult::http);
        }
        if let Some((_, v)) = Self::NAMED.iter().find(|(n, _)| *n == text) {
            return Some(*v);
        }
        if let Ok(v) = text.parse::<i64>() {
            if (i32::MIN as i64..=u32::MAX as i64).contains(&v) {
                return Some(Hresult(v as u32));
            }
        }
        None
    }
}

impl fmt::Display for Hresult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "0x{:08X} ({name})", self.0),
            None => write!(f, "0x{:08X}", self.0),
        }
    }
}

impl fmt::Debug for Hresult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_codes_follow_the_facility_formula() {
        assert_eq!(Hresult::http(404), Hresult(0x8019_0194));
        assert_eq!(Hresult::http(416), Hresult(0x8019_01A0));
        assert_eq!(Hresult::http(505), Hresult(0x8019_01F9));
        assert_eq!(Hresult::http(429).http_status(), Some(429));
        assert_eq!(Hresult::BG_E_INVALID_STATE.http_status(), None);
    }

    #[test]
    fn display_prints_hex_and_name() {
        assert_eq!(
            Hresult::BG_E_INVALID_STATE.to_string(),
            "0x80200002 (BG_E_INVALID_STATE)"
        );
        assert_eq!(Hresult::S_OK.to_string(), "0x00000000 (S_OK)");
        assert_eq!(Hresult(0x1234_5678).to_string(), "0x12345678");
    }

    #[test]
    fn parse_accepts_names_hex_and_http() {
        assert_eq!(Hresult::parse("BG_E_EMPTY"), Some(Hresult::BG_E_EMPTY));
        assert_eq!(Hresult::parse("0x80200002"), Some(Hresult::BG_E_INVALID_STATE));
        assert_eq!(Hresult::parse("BG_E_HTTP_ERROR_503"), Some(Hresult::http(503)));
        assert_eq!(Hresult::parse("-2147024891"), Some(Hresult::E_ACCESSDENIED));
        assert_eq!(Hresult::parse("NOPE"), None);
    }

    #[test]
    fn names_are_unique() {
        for (i, (a, va)) in Hresult::NAMED.iter().enumerate() {
            for (b, vb) in &Hresult::NAMED[i + 1..] {
                assert!(a != b && va != vb, "{a} / {b}");
            }
        }
    }

    #[test]
    fn success_and_failure() {
        assert!(Hresult::BG_S_PARTIAL_COMPLETE.is_success());
        assert!(Hresult::E_FAIL.is_failure());
    }
}
