//! # bitsim-com
//!
//! bitsim behind BITS's own COM API. `bitsim com-server` registers class
//! objects for `CLSID_BackgroundCopyManager` (and, with the DO flavor,
//! `CLSID_DeliveryOptimization` is left to the real service: see
//! docs/conformance/bitsim-com.md) and answers every method from
//! `bitsim-model`, so an unchanged client program runs against a BITS that
//! behaves like Windows, in scaled time, under Wine on Linux.
//!
//! Layers, top-down:
//! - `com` (Windows only): the COM objects. Each method turns its arguments into
//!   an `ApiCall`, asks the driver, and turns the `ApiReply` back into an
//!   HRESULT and out-parameters. It decides nothing.
//! - [`driver`]: the model and the engine's executor on one thread, with a
//!   scaled real clock; a [`driver::Handle`] any RPC thread can call.
//! - [`control`]: a small loopback HTTP endpoint for what a client cannot say
//!   through COM: environment events, "jump ahead by D", status, quit.

#[cfg(windows)]
mod com;
pub mod control;
pub mod driver;
#[cfg(windows)]
pub use com::{bits_clsids, install, run_server, ServerOptions};
