//! The export archive: `gzip( "medledger-archive/v1\n" ‖ frame(BCS(ArchiveHeader)) ‖
//! frame(BCS(ArchivedBlock))… )`, a frame being a big-endian u32 length and
//! the bytes. Blocks and certificates are stored exactly as the node stored
//! them (the bytes the validators hashed and signed), with the audit entries
//! the node derived, so a replay checks the node's own records too.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use medledger_contracts::Hash32;
use medledger_contracts::constants::ARCHIVED_BLOCK_BYTES_MAX;
use medledger_contracts::encoding::{from_bytes, to_bytes};
pub use medledger_store::ArchivedBlock;
use medledger_store::Store;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8] = b"medledger-archive/v1\n";
/// Largest frame: a block, its certificate and its audit entries.
const FRAME_BYTES_MAX: usize = ARCHIVED_BLOCK_BYTES_MAX;

/// What the archive covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveHeader {
    /// The chain.
    pub chain_id: String,
    /// The genesis it starts from.
    pub genesis_hash: Hash32,
    /// Its last height.
    pub height: u64,
}

fn write_frame(out: &mut impl Write, bytes: &[u8]) -> anyhow::Result<()> {
    let length = u32::try_from(bytes.len()).context("frame too large")?;
    out.write_all(&length.to_be_bytes())?;
    out.write_all(bytes)?;
    Ok(())
}

fn read_frame(input: &mut impl Read) -> anyhow::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 4];
    match input.read_exact(&mut length) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > FRAME_BYTES_MAX {
        bail!("archive frame of {length} bytes is over the {FRAME_BYTES_MAX} allowed");
    }
    let mut bytes = vec![0u8; length];
    input
        .read_exact(&mut bytes)
        .context("the archive ends inside a frame")?;
    Ok(Some(bytes))
}

/// The blocks of a stopped node's store, from height 1.
pub struct StoreSource {
    store: Store,
    next: u64,
    height: u64,
}

impl StoreSource {
    /// Opens a node's data directory (the one holding `ledger/`), or the
    /// `ledger` directory itself. The node must be stopped.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let ledger = if dir.join("ledger").is_dir() {
            dir.join("ledger")
        } else {
            dir.to_path_buf()
        };
        let store = Store::open_existing(&ledger)
            .with_context(|| format!("opening {} (stop the node first)", ledger.display()))?;
        let height = store.height()?.unwrap_or(0);
        Ok(Self {
            store,
            next: 1,
            height,
        })
    }

    /// The store's genesis hash and height.
    pub fn header(&self, chain_id: &str) -> anyhow::Result<ArchiveHeader> {
        Ok(ArchiveHeader {
            chain_id: chain_id.to_string(),
            genesis_hash: self
                .store
                .genesis_hash()?
                .context("the store has no genesis")?,
            height: self.height,
        })
    }
}

impl Iterator for StoreSource {
    type Item = anyhow::Result<ArchivedBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next > self.height {
            return None;
        }
        let height = self.next;
        self.next += 1;
        Some(
            self.store
                .archived_block(height)
                .map_err(anyhow::Error::from),
        )
    }
}

/// The blocks of a running node, fetched over its API (`GET
/// /v1/archive/{height}`, signed by an institution's admin key).
pub struct HttpSource {
    runtime: tokio::runtime::Runtime,
    client: medledger_client_sdk::Client,
    who: medledger_client_sdk::Identity,
    next: u64,
    /// The node's height when the replay started.
    pub height: u64,
}

impl HttpSource {
    /// A source over the node at `url`, reading as `who`.
    pub fn open(
        url: &str,
        chain: medledger_contracts::types::Chain,
        who: medledger_client_sdk::Identity,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = medledger_client_sdk::Client::new(url, chain)?;
        let height = runtime.block_on(client.status())?.height;
        Ok(Self {
            runtime,
            client,
            who,
            next: 1,
            height,
        })
    }
}

impl Iterator for HttpSource {
    type Item = anyhow::Result<ArchivedBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next > self.height {
            return None;
        }
        let height = self.next;
        self.next += 1;
        let fetched = self.runtime.block_on(
            self.client
                .get_signed_as::<medledger_client_sdk::api::Archived>(
                    &format!("/v1/archive/{height}"),
                    &self.who,
                ),
        );
        Some(fetched.map_err(anyhow::Error::from).and_then(|body| {
            if body.height != height {
                anyhow::bail!("asked for block {height}, the node sent {}", body.height);
            }
            let bytes = hex::decode(&body.archived).context("`archived` is not hex")?;
            from_bytes(&bytes, FRAME_BYTES_MAX)
                .map_err(|e| anyhow::anyhow!("an archived block does not decode: {e}"))
        }))
    }
}

/// The blocks of an archive file.
pub struct ArchiveSource {
    input: Box<dyn Read + Send>,
    /// What the archive says it covers.
    pub header: ArchiveHeader,
}

impl ArchiveSource {
    /// Opens an archive and reads its header.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Self::read(GzDecoder::new(BufReader::new(file)))
            .with_context(|| format!("reading {}", path.display()))
    }

    /// Reads an archive's header from its uncompressed bytes; the blocks
    /// follow as the iterator is read.
    pub fn read(mut input: impl Read + Send + 'static) -> anyhow::Result<Self> {
        let mut magic = vec![0u8; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .context("not a medledger archive (too short, or not gzip)")?;
        if magic != MAGIC {
            bail!("not a medledger archive (wrong magic)");
        }
        let bytes = read_frame(&mut input)?.context("the archive has no header")?;
        let header = from_bytes(&bytes, 4096).context("the archive header does not decode")?;
        Ok(Self {
            input: Box::new(input),
            header,
        })
    }
}

impl Iterator for ArchiveSource {
    type Item = anyhow::Result<ArchivedBlock>;

    fn next(&mut self) -> Option<Self::Item> {
        match read_frame(&mut self.input) {
            Ok(None) => None,
            Ok(Some(bytes)) => Some(
                from_bytes(&bytes, FRAME_BYTES_MAX)
                    .map_err(|e| anyhow::anyhow!("an archived block does not decode: {e}")),
            ),
            Err(e) => Some(Err(e)),
        }
    }
}

/// Writes an archive of `blocks` under `header` to `path`.
pub fn write_archive(
    path: &Path,
    header: &ArchiveHeader,
    blocks: impl Iterator<Item = anyhow::Result<ArchivedBlock>>,
) -> anyhow::Result<u64> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = GzEncoder::new(BufWriter::new(file), Compression::default());
    out.write_all(MAGIC)?;
    write_frame(&mut out, &to_bytes(header))?;
    let mut count = 0;
    for block in blocks {
        write_frame(&mut out, &to_bytes(&block?))?;
        count += 1;
    }
    out.finish()?.flush()?;
    Ok(count)
}
