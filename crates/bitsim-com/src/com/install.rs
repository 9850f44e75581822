//! The per-user override on Windows: HKCU `TreatAs` from every BITS manager
//! CLSID to bitsim's own class, and from `CLSID_DeliveryOptimization` to
//! bitsim's DO class, whose `LocalServer32` is `bitsim.exe com-server`. Other
//! users, services and elevated processes read HKLM and keep the real BITS
//! and DO. Nothing under HKLM is touched.
//!
//! Lifetime: `bitsim com-server --install` writes the keys and records the
//! server's process id; the server removes them when it exits
//! (`POST /_bitsim/quit`, Ctrl-C, console close). After a crash the keys
//! point at a dead server: the next activation starts `bitsim.exe com-server
//! --activated`, which finds the recorded process gone, removes the override
//! and exits, so the activation after it reaches the real BITS again.
//! `bitsim com-server --uninstall` removes it at any time.
//!
//! Type-checked in CI; not yet run on Windows (see docs/com-facade.md).

use windows::Win32::Foundation::ERROR_SUCCESS;
use windows::Win32::System::Registry::{
    RegDeleteKeyValueW, RegDeleteKeyW, RegGetValueW, RegSetKeyValueW, HKEY_CURRENT_USER, REG_SZ, RRF_RT_REG_SZ,
};
use windows_core::{GUID, HSTRING, PCWSTR};

/// bitsim's own class: the target of the BITS CLSIDs' `TreatAs` entries.
pub const BITSIM_CLSID: GUID = GUID::from_u128(0xb1751dc0_0000_4b17_8000_0000000000c0);
/// bitsim's DO class: the target of `CLSID_DeliveryOptimization`'s `TreatAs`.
pub const BITSIM_DO_CLSID: GUID = GUID::from_u128(0xb1751dc0_0000_4b17_8000_0000000000c1);

const MARKER_KEY: &str = r"Software\bitsim\ComFacade";

fn clsid_key(clsid: &GUID) -> String {
    format!(r"Software\Classes\CLSID\{{{clsid:?}}}")
}

fn set(subkey: &str, value: Option<&str>, data: &str) -> Result<(), String> {
    let wide: Vec<u16> = data.encode_utf16().chain(std::iter::once(0)).collect();
    let name = value.map(HSTRING::from);
    // SAFETY: NUL-terminated buffers that outlive the call.
    let rc = unsafe {
        RegSetKeyValueW(
            HKEY_CURRENT_USER,
            &HSTRING::from(subkey),
            name.as_ref().map_or(PCWSTR::null(), |n| PCWSTR(n.as_ptr())),
            REG_SZ.0,
            Some(wide.as_ptr().cast()),
            (wide.len() * 2) as u32,
        )
    };
    if rc == ERROR_SUCCESS {
        Ok(())
    } else {
        Err(format!(r"HKCU\{subkey}: {rc:?}"))
    }
}

fn get(subkey: &str, value: &str) -> Option<String> {
    let mut buf = vec![0u16; 512];
    let mut len = (buf.len() * 2) as u32;
    // SAFETY: buf has len bytes.
    let rc = unsafe {
        RegGetValueW(
            HKEY_CURRENT_USER,
            &HSTRING::from(subkey),
            &HSTRING::from(value),
            RRF_RT_REG_SZ,
            None,
            Some(buf.as_mut_ptr().cast()),
            Some(&mut len),
        )
    };
    (rc == ERROR_SUCCESS).then(|| String::from_utf16_lossy(&buf[..(len as usize / 2).saturating_sub(1)]))
}

/// Points each `(clsid, ours)` of `map` at bitsim's class `ours`, whose
/// server is `command` (the server's own command line), for the current
/// user, and records `pid` as the owner.
pub fn install(map: &[(GUID, GUID)], command: &str, pid: u32) -> Result<(), String> {
    let mut targets: Vec<GUID> = map.iter().map(|(_, t)| *t).collect();
    targets.dedup();
    for target in &targets {
        let ours = clsid_key(target);
        set(&ours, None, "bitsim COM facade (BITS / DO behind bitsim-model)")?;
        set(&format!(r"{ours}\LocalServer32"), None, command)?;
    }
    for (clsid, target) in map {
        set(
            &format!(r"{}\TreatAs", clsid_key(clsid)),
            None,
            &format!("{{{target:?}}}"),
        )?;
    }
    set(MARKER_KEY, Some("Pid"), &pid.to_string())
}

/// Removes the override (whatever process installed it). Returns how many
/// keys were removed.
pub fn uninstall(map: &[(GUID, GUID)]) -> usize {
    let mut removed = 0;
    let delete = |key: &str| {
        // SAFETY: plain registry calls on HKCU with NUL-terminated names.
        unsafe { RegDeleteKeyW(HKEY_CURRENT_USER, &HSTRING::from(key)) == ERROR_SUCCESS }
    };
    for (clsid, _) in map {
        removed += usize::from(delete(&format!(r"{}\TreatAs", clsid_key(clsid))));
        // The CLSID key itself only if nothing else is in it (fails otherwise).
        delete(&clsid_key(clsid));
    }
    for ours in [BITSIM_CLSID, BITSIM_DO_CLSID] {
        let ours = clsid_key(&ours);
        removed += usize::from(delete(&format!(r"{ours}\LocalServer32")));
        removed += usize::from(delete(&ours));
    }
    // SAFETY: as above.
    unsafe {
        let _ = RegDeleteKeyValueW(HKEY_CURRENT_USER, &HSTRING::from(MARKER_KEY), &HSTRING::from("Pid"));
    }
    removed
}

/// The process id that installed the override, if one is recorded.
pub fn installed_by() -> Option<u32> {
    get(MARKER_KEY, "Pid")?.parse().ok()
}

/// Whether process `pid` is still running.
pub fn alive(pid: u32) -> bool {
    use windows::Win32::System::Threading::{GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION};
    const STILL_ACTIVE: u32 = 259;
    // SAFETY: a handle opened here and closed below.
    unsafe {
        let Ok(h) = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) else {
            return false;
        };
        let mut code = 0;
        let running = GetExitCodeProcess(h, &mut code).is_ok() && code == STILL_ACTIVE;
        let _ = windows::Win32::Foundation::CloseHandle(h);
        running
    }
}
