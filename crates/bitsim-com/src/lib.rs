//! # bitsim-com
//!
//! bitsim behind BITS's own COM API. `bitsim com-server` registers class
//! objects for `CLSID_BackgroundCopyManager` (and the versioned CLSIDs) and,
//! with the DO flavor, `CLSID_DeliveryOptimization` (DO's BITS-compatible
//! surface), and answers every method from `bitsim-model`: one driver per
//! service, each running its flavor's model. An unchanged client program runs
//! against a BITS (or DO) that behaves like Windows, in scaled time, under
//! Wine on Linux. See docs/com-facade.md.
//!
//! Layers, top-down:
//! - `com` (Windows only): the COM objects. Each method turns its arguments into
//!   an `ApiCall`, asks the driver, and turns the `ApiReply` back into an
//!   HRESULT and out-parameters. It decides nothing.
//! - [`driver`]: the model and the engine's executor on one thread, with a
//!   scaled real clock; a [`driver::Handle`] any RPC thread can call.
//! - [`control`]: a small loopback HTTP endpoint for what a client cannot say
//!   through COM: environment events, "jump ahead by D", status, quit; for
//!   one service (`?flavor=bits|do`) or the whole machine.

#[cfg(windows)]
mod com;
pub mod control;
pub mod driver;
#[cfg(windows)]
pub use com::{bits_clsids, install, override_map, run_server, ServerOptions, CLSID_DELIVERY_OPTIMIZATION};
