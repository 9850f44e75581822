#!/usr/bin/env bash
# Type-check and lint (clippy, warnings are errors) the Windows adapter
# (crates/bitsim-windows, with its examples) and the `bitsim` CLI for a
# Windows target, on Linux.
#
# Recipe: ../shared/reference/wine.md. Debian's `rustc-web` 1.96 with its own
# std source (`rust-web-src`) rebuilds std for the tier-3 target
# x86_64-win7-windows-gnu through `-Zbuild-std` (RUSTC_BOOTSTRAP=1 unlocks -Z on
# a stable compiler). The win7 target is used, not x86_64-pc-windows-gnu,
# because the default target's std imports bcryptprimitives!ProcessPrng, which
# Wine 8.0 lacks; type-checking the target we also run under Wine keeps one
# cache.
#
# The project's rustup toolchain is not touched: Debian's compiler is called by
# absolute path, with its own target dir (target/windows, or
# $BITSIM_WINDOWS_TARGET_DIR) and its own CARGO_HOME inside it (registry cache
# for std's and the windows crate's sources), so nothing is written outside
# the repo's target dir except by apt.
#
# Usage:
#   scripts/check-windows.sh            # install if missing, then check + clippy
#   scripts/check-windows.sh build ARGS # cargo build ARGS for the Windows target
#                                       # (used by scripts/wine-conformance.sh)
# Can also be sourced: it then only defines the functions below.
set -euo pipefail

WIN_TARGET=x86_64-win7-windows-gnu
WIN_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-clippy gcc-mingw-w64-x86-64)

# Install the Debian packages in "$@" that are not installed yet.
win_apt_install() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    sudo=(sudo)
  fi
  echo "== apt-get install ${missing[*]}" >&2
  # Try without an index refresh first: the index is often fresh enough.
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >&2; then
    "${sudo[@]}" apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >&2
  fi
}

# Environment for Debian's toolchain, cross-building for $WIN_TARGET.
win_env() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  export WIN_REPO_ROOT="$root"
  export RUSTC=/usr/bin/rustc
  export RUSTDOC=/usr/bin/rustdoc
  export RUSTC_BOOTSTRAP=1
  # BITSIM_WINDOWS_TARGET_DIR lets a CI that starts from a clean clone keep
  # this cache elsewhere; by default it lives in the repo's target dir.
  export CARGO_TARGET_DIR="${BITSIM_WINDOWS_TARGET_DIR:-$root/target/windows}"
  export CARGO_HOME="$CARGO_TARGET_DIR/cargo-home"
  export CARGO_TARGET_X86_64_WIN7_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
  # Warnings in our code fail the check (dependencies and std have their
  # lints capped by cargo, so this only affects workspace crates).
  export CARGO_ENCODED_RUSTFLAGS="-Dwarnings"
  unset RUSTFLAGS RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER
  # Debian's cargo subcommands (cargo-clippy) before rustup's proxies.
  export PATH="/usr/bin:$PATH"
  mkdir -p "$CARGO_HOME"
}

# /usr/bin/cargo SUBCOMMAND with build-std for the Windows target.
win_cargo() {
  local sub="$1"
  shift
  (cd "$WIN_REPO_ROOT" && /usr/bin/cargo "$sub" -Zbuild-std=std,panic_abort --target "$WIN_TARGET" "$@")
}

win_main() {
  win_apt_install "${WIN_PACKAGES[@]}"
  win_env
  local mode="${1:-check}"
  case "$mode" in
    check)
      local start=$SECONDS
      echo "== cargo check --target $WIN_TARGET -p bitsim-windows -p bitsim" >&2
      win_cargo check -p bitsim-windows -p bitsim --lib --bins --examples --tests
      # Clippy on the cfg(windows) code, which clippy on Linux never sees.
      # --no-deps: other workspace crates are linted by the normal CI with the
      # project's toolchain (Debian's clippy is a different version).
      echo "== cargo clippy --no-deps --target $WIN_TARGET -p bitsim-windows" >&2
      win_cargo clippy --no-deps -p bitsim-windows --lib --examples --tests
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
