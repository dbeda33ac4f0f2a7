//! Engines behind [`crate::hub::Broker`]. Only `server.rs` names a concrete one.

pub mod memory;
pub mod redis;

pub use memory::MemoryBroker;
pub use redis::{RedisBroker, ShardReader};
