//! The simulated namespace without FUA, for half the seeds.
//!
//! With FUA a batch whose frame is one write is durable when that write
//! completes, and the sim executes a command whole, so such a batch is
//! never torn or left uncovered by a crash. Without it every batch is a
//! write and then a flush, the path that batches opening a segment (and
//! namespaces without FUA) still take: the seeds keep exercising both, and
//! the torn tails only the second produces.

use std::sync::Arc;

use nvme::sim::SimNamespace;
use nvme::{BufferPool, Geometry, Namespace, OpenError, QueuePair};

/// `SimNamespace`, reporting no FUA support.
pub struct NoFua(pub Arc<SimNamespace>);

impl Namespace for NoFua {
    fn geometry(&self) -> Geometry {
        Geometry {
            supports_fua: false,
            ..self.0.geometry()
        }
    }

    fn buffers(&self) -> &Arc<BufferPool> {
        self.0.buffers()
    }

    fn queue_pair(&self, depth: u32) -> Result<Box<dyn QueuePair>, OpenError> {
        self.0.queue_pair(depth)
    }

    fn describe(&self) -> String {
        format!("{} without FUA", self.0.describe())
    }
}
