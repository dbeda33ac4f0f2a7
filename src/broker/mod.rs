//! Engines behind [`crate::hub::Broker`]. Only `server.rs` names a concrete one.

pub mod memory;

pub use memory::MemoryBroker;
