//! Replies larger than one NATS message (1 MiB by default): the service answers with the first
//! chunk and three headers, and the requester pulls the remaining chunks, one request each, from a
//! subject only the answering replica listens on. Replies that fit one message are unchanged.

use serde::{Deserialize, Serialize};

/// Number of chunks in the whole reply (2 or more).
pub const CHUNKS_HEADER: &str = "Clokio-Chunks";
/// Where to pull the rest.
pub const SUBJECT_HEADER: &str = "Clokio-Chunk-Subject";
/// Which reply to pull.
pub const TOKEN_HEADER: &str = "Clokio-Chunk-Token";
/// Largest chunk (the server's max payload minus headroom, if that is smaller).
pub const CHUNK_BYTES: usize = 512 * 1024;
/// Most chunks a requester accepts (256 MiB at the default chunk size).
pub const MAX_CHUNKS: usize = 512;

/// A pull of chunk `index` (the first is 0, already received with the reply).
#[derive(Debug, Serialize, Deserialize)]
pub struct ChunkPull {
    pub token: String,
    pub index: u32,
}
