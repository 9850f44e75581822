#!/usr/bin/env bash
# Type-check and lint (clippy, warnings are errors) the Windows adapter
# (crates/bitsim-windows, with its examples and tests) and the `bitsim` CLI
# for Windows, on Linux; also the cross-build used by the Wine lane.
#
# Toolchain: the project's rustup toolchain (rust-toolchain.toml, an exact
# release) with the prebuilt std of x86_64-pc-windows-gnu, and Debian's
# mingw-w64 gcc as the linker (scripts/toolchain.sh installs both). No std
# rebuild, no RUSTC_BOOTSTRAP, no distro compiler.
#
# One target for everything, type-check and Wine alike. The prebuilt std of
# x86_64-pc-windows-gnu imports bcryptprimitives!ProcessPrng, which Wine 8.0
# (Debian 12) lacks; rather than rebuilding std for the tier-3
# x86_64-win7-windows-gnu target (-Zbuild-std: minutes cold, nightly-only
# flags on a stable compiler, and a std source that must match the compiler
# exactly), the Wine lane puts a 10-line ProcessPrng stand-in
# (scripts/wine/bcryptprimitives.c) into its fresh prefix. Real Windows has
# the function since Windows 10; nothing the lane builds differs from what a
# Windows user would build.
#
# Its own target dir (target/windows, or $BITSIM_WINDOWS_TARGET_DIR so a CI
# that starts from a clean clone can keep the cache elsewhere).
#
# Usage:
#   scripts/check-windows.sh            # install if missing, then check + clippy
#   scripts/check-windows.sh build ARGS # cargo build ARGS for the Windows target
#                                       # (used by scripts/wine-conformance.sh)
# Can also be sourced: it then only defines the functions below.
set -euo pipefail

# shellcheck source=toolchain.sh
source "$(dirname "${BASH_SOURCE[0]}")/toolchain.sh"

# Environment for cross-building for $WIN_TARGET with the pinned toolchain.
win_env() {
  export WIN_REPO_ROOT="$TOOLCHAIN_ROOT"
  export CARGO_TARGET_DIR="${BITSIM_WINDOWS_TARGET_DIR:-$TOOLCHAIN_ROOT/target/windows}"
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER="$WIN_LINKER"
  # Warnings in our code fail the check (cargo caps lints of dependencies;
  # with --target these flags do not reach build scripts or proc macros).
  export CARGO_ENCODED_RUSTFLAGS="-Dwarnings"
  unset RUSTFLAGS RUSTC RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTC_BOOTSTRAP
}

# cargo SUBCOMMAND for the Windows target, with the pinned toolchain.
win_cargo() {
  local sub="$1"
  shift
  (cd "$WIN_REPO_ROOT" && cargo "+$(tc_channel)" "$sub" --target "$WIN_TARGET" "$@")
}

# wine_prefix_boot WORK: boots the fresh prefix $WINEPREFIX and installs the
# ProcessPrng stand-in. Rust's std for x86_64-pc-windows-gnu imports
# bcryptprimitives!ProcessPrng, which Wine 8.0 lacks: without it every .exe
# exits with STATUS_DLL_NOT_FOUND (code 53) before main.
wine_prefix_boot() {
  local work="$1"
  echo "== wineboot (fresh prefix $WINEPREFIX)" >&2
  wineboot -i >"$work/wineboot.log" 2>&1 || { cat "$work/wineboot.log" >&2; return 1; }
  wineserver -w
  "$WIN_LINKER" -O2 -shared -s -o "$work/bcryptprimitives.dll" \
    "$TOOLCHAIN_ROOT/scripts/wine/bcryptprimitives.c" "$TOOLCHAIN_ROOT/scripts/wine/bcryptprimitives.def" -lbcrypt ||
    { echo "wine: could not build scripts/wine/bcryptprimitives.c with $WIN_LINKER" >&2; return 1; }
  cp "$work/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
}

win_main() {
  ensure_windows
  win_env
  local mode="${1:-check}"
  case "$mode" in
    check)
      local start=$SECONDS
      echo "== cargo check --target $WIN_TARGET -p bitsim-windows -p bitsim-com -p bitsim" >&2
      win_cargo check -p bitsim-windows -p bitsim-com -p bitsim --lib --bins --examples --tests
      # Clippy on the cfg(windows) code, which clippy on Linux never sees.
      # --no-deps: the other crates are linted by the Linux clippy step.
      echo "== cargo clippy --no-deps --target $WIN_TARGET -p bitsim-windows" >&2
      win_cargo clippy --no-deps -p bitsim-windows -p bitsim-com --lib --examples --tests -- -D warnings
      echo "== windows check + clippy ok ($((SECONDS - start)) s)" >&2
      ;;
    build)
      shift
      win_cargo build "$@"
      ;;
    *)
      echo "usage: $0 [check | build CARGO-ARGS...]" >&2
      exit 2
      ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  win_main "$@"
fi
