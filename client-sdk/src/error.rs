//! The SDK's errors: transport, the node's refusals, undecodable answers,
//! and failed verification naming the check.

use medledger_contracts::light::LightError;

/// Why an SDK call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SdkError {
    /// The node could not be reached or the connection failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// The node answered with an error.
    #[error("the node refused ({status} {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// The node's message.
        message: String,
    },
    /// The answer does not decode.
    #[error("the node's answer does not decode: {0}")]
    Decode(String),
    /// The answer does not verify: which check failed.
    #[error("verification failed: {0}")]
    Verify(#[from] LightError),
    /// The genesis file is unusable.
    #[error("genesis: {0}")]
    Genesis(String),
}

impl SdkError {
    /// The node's error code, if the node refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}
