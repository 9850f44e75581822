//! bitsim's adapter for the real Windows BITS and Delivery Optimization
//! services, over COM. Everything here is `cfg(windows)`: on other targets the
//! crate is empty and its `windows` dependencies are not built.
#![cfg(windows)]
