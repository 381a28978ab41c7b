//! A panic's value, kept in an `Error`.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, OnceLock, PoisonError};

/// A panic's value. The value is `Send` but not `Sync`, and `Error` must be
/// both: it stays behind a mutex until [`Error::panic_value`] first finds
/// it is a `T` (then `Sync` too), which moves it into a `OnceLock` that
/// hands out shared references.
pub(super) struct Payload {
    unread: Mutex<Option<Box<dyn Any + Send>>>,
    read: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Payload {
    pub(super) fn new(value: Box<dyn Any + Send>) -> Self {
        Payload {
            unread: Mutex::new(Some(value)),
            read: OnceLock::new(),
        }
    }

    pub(super) fn downcast_ref<T: Any + Send + Sync>(&self) -> Option<&T> {
        if let Some(read) = self.read.get() {
            return read.downcast_ref();
        }
        let mut unread = self.unread.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have moved it while this one waited.
        if let Some(read) = self.read.get() {
            return read.downcast_ref();
        }
        if !unread.as_ref().is_some_and(|value| value.is::<T>()) {
            return None;
        }
        // Under the lock nothing else sets `read`, so nothing is left over;
        // whatever would be is dropped after the lock is released.
        let leftover = match unread.take().map(<Box<dyn Any + Send>>::downcast::<T>) {
            Some(Ok(value)) => self.read.set(value).err().map(|value| value as Box<dyn Any + Send>),
            other => other.and_then(Result::err),
        };
        drop(unread);
        drop(leftover);
        self.read.get()?.downcast_ref()
    }

    /// The value, moved out, wherever it is.
    pub(super) fn take(&mut self) -> Option<Box<dyn Any + Send>> {
        let unread = self.unread.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        unread.or_else(|| self.read.take().map(|read| read as Box<dyn Any + Send>))
    }
}

impl Drop for Payload {
    /// A value whose own `Drop` panics must not make dropping the error
    /// panic (a panic while unwinding aborts): it is dropped under
    /// `catch_unwind`, and the value of that second panic is forgotten,
    /// since dropping it could panic again.
    fn drop(&mut self) {
        if let Some(value) = self.take()
            && let Err(second) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(value)))
        {
            std::mem::forget(second);
        }
    }
}
