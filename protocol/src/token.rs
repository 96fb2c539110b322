//! The claims of a roomcast access token: an HS256 JWT the backend signs (or `roomcast token`
//! mints) and the server verifies. Only the shape lives here; signing and verifying need a JWT
//! library, which only the server and the CLI carry.

use serde::{Deserialize, Serialize};

/// What a token says. Unknown claims are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The member's name in the rooms the token opens: nobody speaks as someone else there.
    pub sub: String,
    /// Rooms the token opens: names, or patterns with `*` (any run of characters).
    #[serde(default)]
    pub rooms: Vec<String>,
    /// Expiry, seconds since the Unix epoch (required).
    pub exp: u64,
    /// Not valid before, seconds since the Unix epoch (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}
