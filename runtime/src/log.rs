//! Logging shim: routes to `defmt` with the `defmt` feature, compiles to nothing without it.

/// Debug-level log line (defmt syntax).
macro_rules! debug {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::debug!($($arg)*);
    }};
}

/// Trace-level log line (defmt syntax).
macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        defmt::trace!($($arg)*);
    }};
}

pub(crate) use {debug, trace};
