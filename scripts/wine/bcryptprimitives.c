/* A stand-in for bcryptprimitives.dll, for Wine 8.0 only (scripts/wine-conformance.sh).
 *
 * Rust's std for x86_64-pc-windows-gnu (1.78 and later) gets its random bytes
 * from bcryptprimitives!ProcessPrng, which every supported Windows has and
 * Wine 8.0 (Debian 12) does not: without this DLL a bitsim .exe exits with
 * STATUS_DLL_NOT_FOUND before main. The lane copies it into a fresh prefix's
 * system32; nothing else uses it, and a real Windows never sees it.
 *
 * ProcessPrng(data, len) fills `data` and always returns TRUE (documented as
 * "always returns TRUE"); here the bytes come from BCryptGenRandom with the
 * system RNG, which Wine implements. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        /* BCryptGenRandom takes a ULONG length: feed it in chunks. */
        ULONG chunk = len > 0x40000000u ? 0x40000000u : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
