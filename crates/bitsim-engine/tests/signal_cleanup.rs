//! The Ctrl-C path of run-directory cleanup. A test binary of its own:
//! `remove_live_run_dirs` removes every live run directory of the process, so it
//! must not run beside other runs.

#[test]
fn an_interrupted_run_directory_is_removed_by_the_signal_path() {
    // On Ctrl-C no destructor runs: the CLI calls remove_live_run_dirs instead.
    let scratch = tempfile::tempdir().unwrap();
    let dir = bitsim_engine::RunDir::new(scratch.path()).unwrap();
    std::fs::write(dir.path().join("partial.bin"), b"x").unwrap();
    std::mem::forget(dir);
    let count = || std::fs::read_dir(scratch.path()).unwrap().count();
    assert_eq!(count(), 1);
    bitsim_engine::remove_live_run_dirs();
    assert_eq!(count(), 0);
}
