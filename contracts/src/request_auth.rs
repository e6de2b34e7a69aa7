//! How a reader signs a request to the HTTP API, so that a node can tell who
//! asks before it answers anything private.
//!
//! Rules:
//! 1. The reader signs `H("medledger/http-request/v2" ‖ BCS(RequestToSign))`
//!    (`H` the chain's suite's hash function, SHA-256 or SM3)
//!    with the current key of the [`Signer`] it claims to be: the chain, the
//!    institution whose node it asks, the method, the path with its query
//!    (without the `auth` parameter), the hash `H` of the body, its clock,
//!    and a nonce.
//! 2. It sends `hex(BCS(RequestAuth))` in `Authorization: Medledger <hex>`.
//!    Nodes refuse one in the URL (`auth` query parameter), where proxies
//!    and logs keep it; the path signed still leaves any `auth` parameter
//!    out, as before.
//! 3. A node refuses a time further than its window from its own clock and a
//!    (signer key, nonce) pair it has seen inside the window: a captured
//!    request cannot be replayed there.
//! 4. A node refuses a request signed for another institution's node
//!    (`wrong_node`): nonces are remembered per node, so without this a
//!    request captured inside its window would replay at every other member.

use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, SecretKey, Signature};
use crate::encoding::{Hash32, HashFunction, tags};
use crate::transaction::Signer;
use crate::types::{Chain, ChainId, InstitutionId, Timestamp};

/// Largest encoded [`RequestAuth`].
pub const REQUEST_AUTH_BYTES_MAX: usize = 1024;

/// What the reader's key signs (rule 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestToSign {
    /// The chain.
    pub chain: ChainId,
    /// The institution whose node is asked (rule 4).
    pub node: InstitutionId,
    /// `GET`, `POST`…
    pub method: String,
    /// Path and query as sent, without the `auth` parameter.
    pub path_and_query: String,
    /// The hash of the body (of nothing for a GET).
    pub body_hash: Hash32,
    /// The reader's clock.
    pub time: Timestamp,
    /// Never reused by this key within the node's window.
    pub nonce: u64,
    /// Who claims to ask.
    pub signer: Signer,
    /// With which key.
    pub public_key: PublicKey,
}

impl RequestToSign {
    /// The digest the key signs on a chain hashing with `hash`.
    pub fn digest(&self, hash: HashFunction) -> Hash32 {
        hash.hash_of(tags::HTTP_REQUEST, self)
    }
}

/// The signature a request carries (rule 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAuth {
    /// The institution whose node is asked (rule 4).
    pub node: InstitutionId,
    /// Who claims to ask.
    pub signer: Signer,
    /// With which key.
    pub public_key: PublicKey,
    /// The reader's clock.
    pub time: Timestamp,
    /// The nonce.
    pub nonce: u64,
    /// Over [`RequestToSign::digest`].
    pub signature: Signature,
}

/// The hash of a request body on a chain hashing with `hash`.
pub fn body_hash(hash: HashFunction, body: &[u8]) -> Hash32 {
    hash.digest(body)
}

/// The `path?query` a request signs: `auth` parameters removed, the rest as sent.
pub fn signed_path(path: &str, query: &str) -> String {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && *pair != "auth" && !pair.starts_with("auth="))
        .collect();
    if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

impl RequestAuth {
    /// Signs a request as `signer` with `key`.
    #[allow(clippy::too_many_arguments)]
    pub fn sign(
        chain: &Chain,
        node: &InstitutionId,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        time: Timestamp,
        nonce: u64,
        signer: Signer,
        key: &SecretKey,
    ) -> Self {
        let public_key = key.public_key();
        let digest = RequestToSign {
            chain: chain.id.clone(),
            node: node.clone(),
            method: method.to_string(),
            path_and_query: path_and_query.to_string(),
            body_hash: body_hash(chain.hash(), body),
            time,
            nonce,
            signer: signer.clone(),
            public_key,
        }
        .digest(chain.hash());
        Self {
            node: node.clone(),
            signer,
            public_key,
            time,
            nonce,
            signature: key.sign(&digest),
        }
    }

    /// The digest this auth claims to sign, for the request as received
    /// (at the node it names: check that is the node receiving it).
    pub fn digest_for(
        &self,
        chain: &Chain,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Hash32 {
        RequestToSign {
            chain: chain.id.clone(),
            node: self.node.clone(),
            method: method.to_string(),
            path_and_query: path_and_query.to_string(),
            body_hash: body_hash(chain.hash(), body),
            time: self.time,
            nonce: self.nonce,
            signer: self.signer.clone(),
            public_key: self.public_key,
        }
        .digest(chain.hash())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_path_drops_only_auth() {
        assert_eq!(signed_path("/v1/x", ""), "/v1/x");
        assert_eq!(signed_path("/v1/x", "auth=ab"), "/v1/x");
        assert_eq!(signed_path("/v1/x", "a=1&auth=ab&b=2"), "/v1/x?a=1&b=2");
        assert_eq!(signed_path("/v1/x", "author=1"), "/v1/x?author=1");
    }

    #[test]
    fn a_signature_covers_every_field() {
        let chain = Chain::new(
            ChainId::new("c").unwrap(),
            crate::crypto::CryptoSuite::Ed25519Sha256,
        );
        let key = SecretKey::from_seed([7; 32]);
        let signer = Signer::Patient(crate::types::PatientId::from_key(
            chain.hash(),
            &key.public_key(),
        ));
        let node = InstitutionId::new("city-first-hospital").unwrap();
        let auth = RequestAuth::sign(
            &chain,
            &node,
            "GET",
            "/v1/a",
            b"",
            Timestamp(5),
            9,
            signer,
            &key,
        );
        let good = auth.digest_for(&chain, "GET", "/v1/a", b"");
        assert!(auth.public_key.verify(&good, &auth.signature).is_ok());
        // The node it was signed for is covered: naming another breaks it.
        let mut elsewhere = auth.clone();
        elsewhere.node = InstitutionId::new("city-second-hospital").unwrap();
        let moved = elsewhere.digest_for(&chain, "GET", "/v1/a", b"");
        assert!(auth.public_key.verify(&moved, &auth.signature).is_err());
        for other in [
            auth.digest_for(&chain, "POST", "/v1/a", b""),
            auth.digest_for(&chain, "GET", "/v1/b", b""),
            auth.digest_for(&chain, "GET", "/v1/a", b"x"),
            auth.digest_for(
                &Chain::new(ChainId::new("d").unwrap(), chain.suite),
                "GET",
                "/v1/a",
                b"",
            ),
            auth.digest_for(
                &Chain::new(chain.id.clone(), crate::crypto::CryptoSuite::Sm2Sm3),
                "GET",
                "/v1/a",
                b"",
            ),
        ] {
            assert!(auth.public_key.verify(&other, &auth.signature).is_err());
        }
    }
}
