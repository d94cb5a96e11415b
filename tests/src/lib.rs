//! microdiff conformance (placeholder, being written).
