//! The reports of anyhow and eyre, kept whole when a task body returns one,
//! so that `downcast_ref` can ask them for the error they wrap (their own
//! conversion to `Box<dyn Error>` hides its type).

use std::error::Error as StdError;
use std::fmt;

/// Defines a wrapper that shows the report's message and the sources of
/// the error inside it, each once.
macro_rules! wrapper {
    ($(#[$doc:meta])* $name:ident($report:ty)) => {
        $(#[$doc])*
        pub(crate) struct $name(pub(crate) $report);

        impl $name {
            /// The error the report wraps (or its context).
            pub(crate) fn wrapped(&self) -> &(dyn StdError + 'static) {
                let wrapped: &(dyn StdError + Send + Sync + 'static) = self.0.as_ref();
                wrapped
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.wrapped(), f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self.wrapped(), f)
            }
        }

        impl StdError for $name {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                self.wrapped().source()
            }
        }
    };
}

#[cfg(feature = "anyhow")]
wrapper!(
    /// An `anyhow::Error` returned by a task body.
    Anyhow(anyhow::Error)
);

#[cfg(feature = "eyre")]
wrapper!(
    /// An `eyre::Report` returned by a task body.
    Eyre(eyre::Report)
);
