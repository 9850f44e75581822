//! Sans-IO model of BITS / DO job semantics (work in progress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor { Bits, DeliveryOptimization }
impl Flavor { pub const ALL: [Flavor; 2] = [Flavor::Bits, Flavor::DeliveryOptimization]; }
