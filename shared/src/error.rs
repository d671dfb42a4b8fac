//! The crate's one error type. Every message says what was wrong and what was expected.

use thiserror::Error;

/// Errors at the `indm` crate boundary.
#[derive(Debug, Error)]
pub enum IndmError {
    /// A name (data set, SDE, sampler, flow, ...) that is not one of the valid choices.
    #[error("unknown {kind} '{given}'; valid choices are: {}", valid.join(", "))]
    UnknownName {
        /// What kind of thing was named, e.g. "data set".
        kind: &'static str,
        /// The name given.
        given: String,
        /// All valid names.
        valid: Vec<String>,
    },
    /// A numeric setting out of its valid range.
    #[error("invalid {what}: {given} ({expected})")]
    InvalidValue {
        /// The setting.
        what: &'static str,
        /// The value given, as text.
        given: String,
        /// What is expected, e.g. "must be a positive integer".
        expected: String,
    },
    /// A weights file whose tensor has the wrong shape for the architecture.
    #[error("tensor '{tensor}' has shape {found:?} but the architecture expects {expected:?}")]
    ShapeMismatch {
        /// Tensor name.
        tensor: String,
        /// Shape the architecture needs.
        expected: Vec<usize>,
        /// Shape found in the file.
        found: Vec<usize>,
    },
    /// A tensor the architecture needs is missing from the weights file.
    #[error("tensor '{0}' is missing from the weights file")]
    MissingTensor(String),
    /// A weights or checkpoint file that cannot be parsed or fails its checksum.
    #[error("invalid weights file {path}: {reason}")]
    BadWeights {
        /// File path (or "<bytes>").
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Two architectures that should agree do not (e.g. when resuming).
    #[error("architecture mismatch: {0}")]
    ArchitectureMismatch(String),
    /// Training produced a non-finite loss.
    #[error("non-finite loss at step {step}: {detail}")]
    NonFinite {
        /// Training step.
        step: u64,
        /// Which term was not finite.
        detail: String,
    },
    /// No GPU adapter could be found (the caller may fall back to the CPU path).
    #[error("no GPU adapter available: {0}")]
    NoAdapter(String),
    /// A request beyond what the GPU adapter allows, refused before any dispatch.
    #[error("{what} needs {requested} but this GPU adapter allows at most {limit}")]
    GpuLimit {
        /// What was requested, e.g. "particle buffer (bytes)".
        what: String,
        /// The amount requested.
        requested: u64,
        /// The adapter's limit.
        limit: u64,
    },
    /// A GPU operation failed (shader compilation, validation, mapping, device loss).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// Image bytes that cannot be decoded, or an image refused for its size or channels.
    #[error("image {origin}: {reason}")]
    BadImage {
        /// File path (or "<bytes>", "<upload>").
        origin: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// An image whose header declares more pixels than allowed; refused before decoding.
    #[error(
        "image {origin} is {width}x{height} pixels, more than allowed (at most {max_side} per side and {max_pixels} pixels in all); use a smaller image"
    )]
    ImageTooLarge {
        /// File path (or "<bytes>").
        origin: String,
        /// Width from the header.
        width: u64,
        /// Height from the header.
        height: u64,
        /// Largest allowed width or height.
        max_side: u32,
        /// Largest allowed width x height.
        max_pixels: u64,
    },
    /// A data folder or data file that is missing, empty or malformed.
    #[error("data {path}: {reason}")]
    BadData {
        /// Folder or file path.
        path: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// An I/O error with the path involved.
    // The cause is part of the message and deliberately not a `#[source]`: callers
    // that print error chains (`{:#}`) would otherwise print it twice.
    #[error("{path}: {cause}")]
    Io {
        /// Path involved.
        path: String,
        /// Underlying error.
        cause: std::io::Error,
    },
}

/// Result alias for the crate.
pub type Result<T> = std::result::Result<T, IndmError>;

impl IndmError {
    /// Shorthand for [`IndmError::InvalidValue`].
    pub fn invalid(what: &'static str, given: impl ToString, expected: impl Into<String>) -> Self {
        IndmError::InvalidValue {
            what,
            given: given.to_string(),
            expected: expected.into(),
        }
    }

    /// Shorthand for an [`IndmError::Io`] error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        IndmError::Io {
            path: path.as_ref().display().to_string(),
            cause: source,
        }
    }

    /// Shorthand for [`IndmError::UnknownName`].
    pub fn unknown(kind: &'static str, given: &str, valid: &[&str]) -> Self {
        IndmError::UnknownName {
            kind,
            given: given.to_string(),
            valid: valid.iter().map(|s| s.to_string()).collect(),
        }
    }
}
