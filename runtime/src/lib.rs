//! microdiff runtime (placeholder, being written).
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod noise;
