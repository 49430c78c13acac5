//! The mailbox of a connection's task: the [`Command`]s that [`crate::Conn`] handles queue from
//! any task, and the [`CommandQueue`] they wait in until the connection's task (`driver.rs`)
//! applies them to the protocol core.
//!
//! Only the driver takes commands out; handles only put them in. It is its own module so the
//! handle (`conn.rs`) and the loop (`driver.rs`) share the queue without importing each other
//! for it, and so the wake-up rules (when a push must wake the task, when it need not) are in
//! one place.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tether_proto::{CloseCode, Message, PreparedFrame};

/// What other tasks ask a connection's task to do.
#[derive(Debug)]
pub(crate) enum Command {
    Send(Message),
    SendPrepared(PreparedFrame),
    Ping(Bytes),
    Close(CloseCode, String),
}

/// Commands for a connection's task. A plain locked queue rather than a tokio channel, and the
/// waiting task leaves its waker here (polled from the same `poll_fn` as the socket and the timer)
/// rather than holding a `Notified` future: nothing allocated up front, nothing more in the task
/// (`docs/memory-per-connection.md`, rule 5).
///
/// The connection's task is only woken when it is waiting: commands queued while it runs (an echo
/// sent from inside its own `message` callback, say) are picked up on its way to waiting, so the
/// common case costs no wake-up at all.
#[derive(Default)]
pub(crate) struct CommandQueue {
    queue: Mutex<Queue>,
    /// The task is waiting (or about to): a push must wake it.
    parked: AtomicBool,
}

#[derive(Default)]
struct Queue {
    commands: VecDeque<Command>,
    waker: Option<Waker>,
}

impl CommandQueue {
    pub(crate) fn push(&self, command: Command) {
        let waker = {
            let mut queue = self.queue.lock().expect("not poisoned");
            queue.commands.push_back(command);
            if self.parked.load(Ordering::SeqCst) {
                queue.waker.take()
            } else {
                None
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ready when commands are queued; otherwise the task is parked and the next push wakes it.
    pub(crate) fn poll_queued(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut queue = self.queue.lock().expect("not poisoned");
        if !queue.commands.is_empty() {
            return Poll::Ready(());
        }
        if !queue.waker.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
            queue.waker = Some(cx.waker().clone());
        }
        self.parked.store(true, Ordering::SeqCst);
        Poll::Pending
    }

    /// The task is running again: pushes from now on are picked up without a wake-up.
    pub(crate) fn unpark(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }

    /// Everything queued so far.
    #[cfg(test)]
    pub(crate) fn take(&self) -> VecDeque<Command> {
        std::mem::take(&mut self.queue.lock().expect("not poisoned").commands)
    }

    /// Hands every queued command to `apply`, in order. The queue keeps a small capacity between
    /// calls so a busy connection does not allocate per message, and gives a large one back.
    pub(crate) fn drain(&self, mut apply: impl FnMut(Command)) {
        let mut queue = self.queue.lock().expect("not poisoned");
        while let Some(command) = queue.commands.pop_front() {
            apply(command);
        }
        if queue.commands.capacity() > 16 {
            queue.commands.shrink_to(16);
        }
    }
}
