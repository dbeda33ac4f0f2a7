//! The default single-node engine: delivery is a direct call into the hub.

use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;

use crate::hub::{Broker, BrokerError, BrokerHandler, Control, PublishOptions, PublishOutcome};
use crate::protocol::Publication;

/// In-process broker for one node.
#[derive(Default)]
pub struct MemoryBroker {
    handler: OnceLock<Weak<dyn BrokerHandler>>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

impl MemoryBroker {
    /// A new engine.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn handler(&self) -> Option<Arc<dyn BrokerHandler>> {
        self.handler.get().and_then(Weak::upgrade)
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn set_handler(&self, handler: Weak<dyn BrokerHandler>) {
        let _ = self.handler.set(handler);
    }

    async fn publish(&self, publication: Publication, _opts: &PublishOptions) -> Result<PublishOutcome, BrokerError> {
        if let Some(h) = self.handler() {
            h.handle_publication(Arc::new(publication));
        }
        Ok(PublishOutcome::default())
    }

    async fn subscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unsubscribe(&self, _channel: &str) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn control(&self, control: Control) -> Result<(), BrokerError> {
        if let Some(h) = self.handler() {
            h.handle_control(control);
        }
        Ok(())
    }

    async fn health(&self) -> Result<(), BrokerError> {
        Ok(())
    }
}
