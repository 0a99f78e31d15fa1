//! SIGINT/SIGTERM become a flag the training loop polls between steps, so it can finish the
//! step, checkpoint and mark the run `interrupted`. A second signal exits at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub struct Interrupt(Arc<AtomicUsize>);

impl Interrupt {
    /// Registers the handlers for this process.
    pub fn install() -> std::io::Result<Self> {
        let signal = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // signal-hook's documented pattern: the shutdown handler runs first and only fires
            // once `seen` was set by an earlier signal.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&seen))?;
            signal_hook::flag::register(sig, Arc::clone(&seen))?;
            signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)?;
        }
        Ok(Interrupt(signal))
    }

    /// A flag nothing sets, for library use and tests.
    pub fn none() -> Self {
        Interrupt(Arc::new(AtomicUsize::new(0)))
    }

    /// The signal number received, if any.
    pub fn requested(&self) -> Option<i32> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s as i32),
        }
    }
}
