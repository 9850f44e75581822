#!/usr/bin/env bash
# What bitsim's scripts need, installed where missing, each failure one clear
# line saying what is missing and how to install it by hand (issue 8).
#
# - Rust: the project's rustup toolchain, pinned in rust-toolchain.toml (an
#   exact release), with rustfmt and clippy; for the Windows lanes also the
#   prebuilt std of x86_64-pc-windows-gnu. Never a distro compiler.
# - Debian packages only for what rustup does not provide: the mingw-w64
#   linker, and Wine for the Wine lane.
#
# Usage: source it and call the functions, or run it:
#   scripts/toolchain.sh             # Rust toolchain + rustfmt + clippy
#   scripts/toolchain.sh windows     # ... + Windows target + mingw-w64 linker
#   scripts/toolchain.sh wine        # ... + wine
set -euo pipefail

TOOLCHAIN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WIN_TARGET=x86_64-pc-windows-gnu
WIN_LINKER=x86_64-w64-mingw32-gcc

# die LINE: print one line to stderr and fail.
tc_die() {
  echo "toolchain: $*" >&2
  exit 1
}

# The channel rust-toolchain.toml pins, e.g. 1.95.0.
tc_channel() {
  sed -n 's/^channel *= *"\([^"]*\)".*/\1/p' "$TOOLCHAIN_ROOT/rust-toolchain.toml"
}

# The pinned toolchain with rustfmt and clippy.
ensure_rust() {
  command -v rustup >/dev/null 2>&1 ||
    tc_die "rustup not found: install it from https://rustup.rs, then rerun (the toolchain itself is pinned in rust-toolchain.toml)"
  local ch
  ch="$(tc_channel)"
  [[ -n "$ch" ]] || tc_die "no channel in $TOOLCHAIN_ROOT/rust-toolchain.toml"
  if ! rustup run "$ch" rustc -V >/dev/null 2>&1; then
    # A machine whose default toolchain is exactly the pinned release (a
    # rustup "stable" that is $ch) needs no download: name it $ch too.
    local host home stable_dir
    host="$(rustc +stable -vV 2>/dev/null | sed -n 's/^host: //p' || true)"
    home="${RUSTUP_HOME:-$HOME/.rustup}"
    stable_dir="$home/toolchains/stable-$host"
    if [[ -n "$host" && -d "$stable_dir" ]] &&
      "$stable_dir/bin/rustc" -V 2>/dev/null | grep -q "^rustc $ch "; then
      echo "== toolchain: rustup's stable is $ch; using it as the pinned $ch" >&2
      ln -sfn "$stable_dir" "$home/toolchains/$ch-$host"
    else
      echo "== rustup toolchain install $ch (pinned in rust-toolchain.toml)" >&2
      rustup toolchain install "$ch" --profile minimal >&2 ||
        tc_die "Rust $ch is not installed and rustup could not install it: run 'rustup toolchain install $ch' by hand"
    fi
  fi
  rustup component add --toolchain "$ch" rustfmt clippy >/dev/null 2>&1 ||
    tc_die "rustfmt/clippy missing for Rust $ch: run 'rustup component add --toolchain $ch rustfmt clippy' by hand"
}

# Debian packages "$@", installed if missing (an index refresh only if needed).
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null 2>&1 ||
    tc_die "missing packages ${missing[*]} and no apt-get: install them with your package manager"
  local sudo=()
  [[ "$(id -u)" == 0 ]] || sudo=(sudo)
  echo "== apt-get install ${missing[*]}" >&2
  if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
    { "${sudo[@]}" apt-get update -q >/dev/null 2>&1 &&
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; } ||
      tc_die "could not install ${missing[*]}: run 'apt-get update && apt-get install -y ${missing[*]}' as root by hand"
  fi
}

# The Windows target's prebuilt std and the mingw-w64 linker.
ensure_windows() {
  ensure_rust
  local ch
  ch="$(tc_channel)"
  rustup target list --toolchain "$ch" --installed 2>/dev/null | grep -qx "$WIN_TARGET" ||
    rustup target add --toolchain "$ch" "$WIN_TARGET" >/dev/null 2>&1 ||
    tc_die "Rust std for $WIN_TARGET missing: run 'rustup target add --toolchain $ch $WIN_TARGET' by hand"
  ensure_apt gcc-mingw-w64-x86-64
  command -v "$WIN_LINKER" >/dev/null 2>&1 ||
    tc_die "$WIN_LINKER not found after installing gcc-mingw-w64-x86-64: run 'apt-get install -y gcc-mingw-w64-x86-64' by hand"
}

# Everything the Wine lane needs.
ensure_wine() {
  ensure_windows
  ensure_apt wine wine64
  local t
  for t in wine wineboot wineserver python3; do
    command -v "$t" >/dev/null 2>&1 || tc_die "$t not found: run 'apt-get install -y wine wine64 python3' by hand"
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-rust}" in
    rust) ensure_rust ;;
    windows) ensure_windows ;;
    wine) ensure_wine ;;
    *) echo "usage: $0 [rust | windows | wine]" >&2; exit 2 ;;
  esac
  rustup run "$(tc_channel)" rustc -V
fi
