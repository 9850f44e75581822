/*
 * A BITS client that knows nothing of bitsim: plain COM against mingw-w64's
 * stock bits.h, as an updater would write it. scripts/wine-com.sh builds it
 * with x86_64-w64-mingw32-gcc and runs it against whatever answers
 * CLSID_BackgroundCopyManager (bitsim's facade, or Wine's own qmgr).
 *
 *   bits_client.exe MODE BASE-URL DIR
 *
 * MODE:
 *   transfer  one download; waits for JobTransferred, then Complete
 *   error403  a 403; waits for ERROR, reads GetError; its JobError callback
 *             returns E_FAIL twice, then S_OK
 *   error500  a 500; waits for TRANSIENT_ERROR
 *   slots     five jobs whose JobTransferred callbacks each block for 1.5 s;
 *             counts how many are in flight at once
 *   calls     benchmark: 2,000 GetState calls on one job, timed
 *   retry     benchmark: a job whose first HEAD gets a 503 (the mock server's
 *             plan); wall time from TRANSIENT_ERROR to TRANSFERRED with a
 *             600 s minimum retry delay
 *
 * Every observation is one line `CHECK name=value` on stdout; the script
 * compares them with what Windows does. Exit code 0 unless the client itself
 * could not run (COM or argument errors: 2) or timed out waiting (3).
 */
#define COBJMACROS
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
/* The GUIDs are defined here: mingw-w64's libuuid has none of BITS's. */
#include <initguid.h>
#include <bits.h>
#include <stdio.h>
#include <wchar.h>

/* ---- the callback object -------------------------------------------------- */

typedef struct {
    IBackgroundCopyCallback iface;
    LONG refs;
    LONG transferred;   /* JobTransferred calls */
    LONG errors;        /* JobError calls */
    LONG error_fail;    /* JobError returns E_FAIL this many times first */
    DWORD block_ms;     /* JobTransferred blocks this long */
    LONG in_flight, max_in_flight;
    HRESULT last_code;
    BG_ERROR_CONTEXT last_context;
} Callback;

static HRESULT STDMETHODCALLTYPE cb_qi(IBackgroundCopyCallback *This, REFIID riid, void **out) {
    if (IsEqualIID(riid, &IID_IUnknown) || IsEqualIID(riid, &IID_IBackgroundCopyCallback)) {
        *out = This;
        IBackgroundCopyCallback_AddRef(This);
        return S_OK;
    }
    *out = NULL;
    return E_NOINTERFACE;
}

static ULONG STDMETHODCALLTYPE cb_addref(IBackgroundCopyCallback *This) {
    return InterlockedIncrement(&((Callback *)This)->refs);
}

static ULONG STDMETHODCALLTYPE cb_release(IBackgroundCopyCallback *This) {
    return InterlockedDecrement(&((Callback *)This)->refs); /* static storage */
}

static HRESULT STDMETHODCALLTYPE cb_transferred(IBackgroundCopyCallback *This, IBackgroundCopyJob *job) {
    Callback *cb = (Callback *)This;
    LONG now = InterlockedIncrement(&cb->in_flight);
    LONG max;
    while ((max = cb->max_in_flight) < now && InterlockedCompareExchange(&cb->max_in_flight, now, max) != max) {}
    InterlockedIncrement(&cb->transferred);
    if (cb->block_ms) Sleep(cb->block_ms);
    IBackgroundCopyJob_Complete(job);
    InterlockedDecrement(&cb->in_flight);
    return S_OK;
}

static HRESULT STDMETHODCALLTYPE cb_error(IBackgroundCopyCallback *This, IBackgroundCopyJob *job,
                                          IBackgroundCopyError *error) {
    Callback *cb = (Callback *)This;
    LONG n = InterlockedIncrement(&cb->errors);
    (void)job;
    if (error) IBackgroundCopyError_GetError(error, &cb->last_context, &cb->last_code);
    return n <= cb->error_fail ? E_FAIL : S_OK;
}

static HRESULT STDMETHODCALLTYPE cb_modification(IBackgroundCopyCallback *This, IBackgroundCopyJob *job, DWORD r) {
    (void)This; (void)job; (void)r;
    return S_OK;
}

static IBackgroundCopyCallbackVtbl cb_vtbl = {cb_qi, cb_addref, cb_release, cb_transferred, cb_error,
                                              cb_modification};
static Callback callback = {{&cb_vtbl}, 1};

/* ---- helpers ------------------------------------------------------------- */

static IBackgroundCopyManager *manager;

static void fail(const char *what, HRESULT hr) {
    printf("CLIENT-ERROR %s hr=0x%08lX\n", what, (unsigned long)hr);
    fflush(stdout);
    ExitProcess(2);
}

static IBackgroundCopyJob *new_job(const wchar_t *url, const wchar_t *local) {
    IBackgroundCopyJob *job;
    GUID id;
    HRESULT hr = IBackgroundCopyManager_CreateJob(manager, L"bits_client", BG_JOB_TYPE_DOWNLOAD, &id, &job);
    if (FAILED(hr)) fail("CreateJob", hr);
    if (FAILED(hr = IBackgroundCopyJob_AddFile(job, url, local))) fail("AddFile", hr);
    if (FAILED(hr = IBackgroundCopyJob_SetNotifyInterface(job, (IUnknown *)&callback.iface)))
        fail("SetNotifyInterface", hr);
    if (FAILED(hr = IBackgroundCopyJob_SetNotifyFlags(job, BG_NOTIFY_JOB_TRANSFERRED | BG_NOTIFY_JOB_ERROR)))
        fail("SetNotifyFlags", hr);
    if (FAILED(hr = IBackgroundCopyJob_Resume(job))) fail("Resume", hr);
    return job;
}

static BG_JOB_STATE state_of(IBackgroundCopyJob *job) {
    BG_JOB_STATE s = 0;
    HRESULT hr = IBackgroundCopyJob_GetState(job, &s);
    if (FAILED(hr)) fail("GetState", hr);
    return s;
}

static int wait_count(volatile LONG *count, LONG want, int seconds) {
    for (int i = 0; i < seconds * 50; i++) {
        if (*count >= want) return 1;
        Sleep(20);
    }
    return 0;
}

static const char *state_name(BG_JOB_STATE s) {
    static const char *names[] = {"QUEUED", "CONNECTING", "TRANSFERRING", "SUSPENDED", "ERROR",
                                  "TRANSIENT_ERROR", "TRANSFERRED", "ACKNOWLEDGED", "CANCELLED"};
    return s < 9 ? names[s] : "?";
}

/* ---- modes -------------------------------------------------------------- */

int wmain(int argc, wchar_t **argv) {
    wchar_t url[1024], local[1024];
    HRESULT hr;
    if (argc != 4) {
        fprintf(stderr, "usage: bits_client MODE BASE-URL DIR\n");
        return 2;
    }
    if (FAILED(hr = CoInitializeEx(NULL, COINIT_MULTITHREADED))) fail("CoInitializeEx", hr);
    hr = CoCreateInstance(&CLSID_BackgroundCopyManager, NULL, CLSCTX_LOCAL_SERVER, &IID_IBackgroundCopyManager,
                          (void **)&manager);
    if (FAILED(hr)) fail("CoCreateInstance", hr);
    const wchar_t *mode = argv[1], *base = argv[2], *dir = argv[3];

    if (!wcscmp(mode, L"transfer")) {
        swprintf(url, 1024, L"%ls/bytes/100000", base);
        swprintf(local, 1024, L"%ls\\transfer.bin", dir);
        IBackgroundCopyJob *job = new_job(url, local);
        int got = wait_count(&callback.transferred, 1, 30);
        Sleep(200);
        printf("CHECK job_transferred_calls=%ld\n", callback.transferred);
        printf("CHECK state_after_callback=%s\n", state_name(state_of(job)));
        return got ? 0 : 3;
    }
    if (!wcscmp(mode, L"error403") || !wcscmp(mode, L"error500")) {
        int is403 = !wcscmp(mode, L"error403");
        swprintf(url, 1024, L"%ls/status/%ls", base, is403 ? L"403" : L"500");
        swprintf(local, 1024, L"%ls\\%ls.bin", dir, mode);
        callback.error_fail = 2;
        IBackgroundCopyJob *job = new_job(url, local);
        /* Retry and re-delivery delays: 60 s (at --time-scale 600, 0.1 s). */
        IBackgroundCopyJob_SetMinimumRetryDelay(job, 60);
        int reached = 0;
        for (int i = 0; i < 30 * 50 && !reached; i++) {
            BG_JOB_STATE s = state_of(job);
            reached = s == BG_JOB_STATE_ERROR || s == BG_JOB_STATE_TRANSIENT_ERROR || s == BG_JOB_STATE_TRANSFERRED;
            if (!reached) Sleep(20);
        }
        printf("CHECK state=%s\n", state_name(state_of(job)));
        IBackgroundCopyError *error = NULL;
        if (SUCCEEDED(IBackgroundCopyJob_GetError(job, &error)) && error) {
            BG_ERROR_CONTEXT context;
            HRESULT code;
            IBackgroundCopyError_GetError(error, &context, &code);
            printf("CHECK error=0x%08lX context=%d\n", (unsigned long)code, (int)context);
            IBackgroundCopyError_Release(error);
        } else {
            printf("CHECK error=none\n");
        }
        if (is403) {
            wait_count(&callback.errors, 3, 30);
            Sleep(500); /* a fourth call would come within 0.1 s */
            printf("CHECK job_error_calls=%ld\n", callback.errors);
            printf("CHECK job_error_code=0x%08lX context=%d\n", (unsigned long)callback.last_code,
                   (int)callback.last_context);
        } else {
            Sleep(500);
            printf("CHECK job_error_calls=%ld\n", callback.errors);
        }
        IBackgroundCopyJob_Cancel(job);
        return reached ? 0 : 3;
    }
    if (!wcscmp(mode, L"slots")) {
        IBackgroundCopyJob *jobs[5];
        callback.block_ms = 1500;
        for (int i = 0; i < 5; i++) {
            swprintf(url, 1024, L"%ls/bytes/%d", base, 1000 + i);
            swprintf(local, 1024, L"%ls\\slot%d.bin", dir, i);
            jobs[i] = new_job(url, local);
        }
        int got = wait_count(&callback.transferred, 5, 30);
        while (callback.in_flight > 0) Sleep(20);
        printf("CHECK job_transferred_calls=%ld\n", callback.transferred);
        printf("CHECK max_in_flight=%ld\n", callback.max_in_flight);
        (void)jobs;
        return got ? 0 : 3;
    }
    if (!wcscmp(mode, L"calls") || !wcscmp(mode, L"retry")) {
        LARGE_INTEGER freq, t0, t1;
        QueryPerformanceFrequency(&freq);
        swprintf(url, 1024, L"%ls/bytes/1000", base);
        swprintf(local, 1024, L"%ls\\bench.bin", dir);
        IBackgroundCopyJob *job;
        GUID id;
        if (FAILED(hr = IBackgroundCopyManager_CreateJob(manager, L"bench", BG_JOB_TYPE_DOWNLOAD, &id, &job)))
            fail("CreateJob", hr);
        if (FAILED(hr = IBackgroundCopyJob_AddFile(job, url, local))) fail("AddFile", hr);
        if (!wcscmp(mode, L"calls")) {
            const int n = 2000;
            QueryPerformanceCounter(&t0);
            for (int i = 0; i < n; i++) state_of(job);
            QueryPerformanceCounter(&t1);
            double s = (double)(t1.QuadPart - t0.QuadPart) / (double)freq.QuadPart;
            printf("BENCH calls=%d seconds=%.3f calls_per_second=%.0f\n", n, s, n / s);
            IBackgroundCopyJob_Cancel(job);
            return 0;
        }
        IBackgroundCopyJob_SetMinimumRetryDelay(job, 600);
        if (FAILED(hr = IBackgroundCopyJob_Resume(job))) fail("Resume", hr);
        int ok = 0;
        for (int i = 0; i < 200000 && !ok; i++) {
            ok = state_of(job) == BG_JOB_STATE_TRANSIENT_ERROR;
            if (!ok) Sleep(1);
        }
        QueryPerformanceCounter(&t0);
        for (int i = 0; i < 200000 && ok; i++) {
            if (state_of(job) == BG_JOB_STATE_TRANSFERRED) break;
            Sleep(1);
        }
        QueryPerformanceCounter(&t1);
        printf("BENCH state=%s retry_wall_ms=%.1f\n", state_name(state_of(job)),
               1000.0 * (double)(t1.QuadPart - t0.QuadPart) / (double)freq.QuadPart);
        IBackgroundCopyJob_Cancel(job);
        return ok ? 0 : 3;
    }
    fprintf(stderr, "unknown mode\n");
    return 2;
}
