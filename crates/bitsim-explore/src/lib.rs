//! # bitsim-explore
//!
//! `bitsim explore`: random but valid scenarios ([`generate`]), run on the simulator
//! and checked against invariants taken from the reference ([`invariants`]), optionally
//! compared with a second backend; a problem is shrunk by proptest to the smallest
//! scenario that still shows it and written out as an ordinary scenario file
//! ([`explore()`]).

pub mod explore;
pub mod generate;
pub mod invariants;
pub mod sim;

pub use explore::{explore, load, run_and_check, Against, ExploreConfig, Finding, Summary};
pub use invariants::{check, RunFacts, Violation};
pub use sim::{Outcome, Overrides, Sim};
