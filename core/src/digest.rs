//! Content digests: `sha256:<64 lowercase hex>`, computed while streaming.
//!
//! sha2 uses the CPU's SHA extensions (SHA-NI / ARMv8 SHA2) when present and falls back to
//! portable code otherwise; `bench/` compares our rate with `openssl dgst -sha256`.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest as _, Sha256};

/// Buffer size for streaming hashes: large enough to amortise syscalls, small enough to
/// keep memory bounded whatever the file size.
pub const HASH_BUFFER: usize = 1 << 20;

/// A sha256 digest. Displays and parses as `sha256:<64 lowercase hex>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest must start with `sha256:`")]
    Algorithm,
    #[error("a sha256 digest has exactly 64 lowercase hex characters after `sha256:`")]
    Hex,
}

impl Digest {
    pub const PREFIX: &'static str = "sha256:";
    /// The one accepted form as a regular expression (for the OpenAPI spec).
    pub const PATTERN: &'static str = "^sha256:[0-9a-f]{64}$";

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex characters, without the `sha256:` prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// sha256 of a byte slice already in memory (small things: manifests, configs).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        let mut h = Hasher::new();
        h.update(bytes);
        h.finish()
    }

    /// Parse the bare 64-hex form (no prefix), lowercase only.
    pub fn from_hex(hex_str: &str) -> Result<Self, DigestError> {
        if hex_str.len() != 64
            || !hex_str
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(DigestError::Hex);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_str, &mut out).map_err(|_| DigestError::Hex)?;
        Ok(Self(out))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_str = s.strip_prefix(Self::PREFIX).ok_or(DigestError::Algorithm)?;
        Self::from_hex(hex_str)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// On the wire a digest is a string, `sha256:<64 lowercase hex>`.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Digest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A sha256 digest: `sha256:` and 64 lowercase hex characters.",
            ))
            .pattern(Some("^sha256:[0-9a-f]{64}$"))
            .examples(["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Digest {}

/// Incremental sha256 that also counts bytes.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Digest {
        Digest(self.inner.finalize().into())
    }

    /// The hasher's internal state as bytes (byte count first), so a resumable upload can
    /// keep hashing where it stopped after a restart without re-reading what it stored.
    pub fn save_state(&self) -> Vec<u8> {
        let mut out = self.len.to_le_bytes().to_vec();
        out.extend_from_slice(&self.inner.serialize());
        out
    }

    /// Rebuild a hasher from [`Hasher::save_state`] bytes.
    pub fn restore_state(bytes: &[u8]) -> Result<Self, StateError> {
        let (len, state) = bytes.split_first_chunk::<8>().ok_or(StateError)?;
        let state = state.try_into().map_err(|_| StateError)?;
        let inner = Sha256::deserialize(state).map_err(|_| StateError)?;
        Ok(Self {
            inner,
            len: u64::from_le_bytes(*len),
        })
    }
}

/// Saved hasher state that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("saved sha256 state is corrupt")]
pub struct StateError;

/// Hash everything `reader` yields, in bounded memory. Returns the digest and the byte count.
pub fn sha256_reader<R: Read>(reader: R) -> io::Result<(Digest, u64)> {
    let mut hasher = Hasher::new();
    hash_into(&mut hasher, reader)?;
    let len = hasher.len();
    Ok((hasher.finish(), len))
}

/// Feed everything `reader` yields into `hasher` (which may hold a prefix already), in
/// bounded memory. Returns the bytes read.
pub fn hash_into<R: Read>(hasher: &mut Hasher, mut reader: R) -> io::Result<u64> {
    let mut buf = vec![0u8; HASH_BUFFER];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// Hash a file on disk.
pub fn sha256_file(path: &std::path::Path) -> io::Result<(Digest, u64)> {
    sha256_reader(std::fs::File::open(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            Digest::of_bytes(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Digest::of_bytes(b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn streaming_equals_one_shot_across_buffer_boundaries() {
        let data: Vec<u8> = (0..(HASH_BUFFER * 2 + 17))
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let (d, n) = sha256_reader(&data[..]).unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::of_bytes(&data));
    }

    #[test]
    fn saved_state_resumes_exactly() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        for split in [0, 1, 63, 64, 65, 4097, data.len()] {
            let mut a = Hasher::new();
            a.update(&data[..split]);
            let mut b = Hasher::restore_state(&a.save_state()).unwrap();
            assert_eq!(b.len(), split as u64);
            b.update(&data[split..]);
            assert_eq!(b.finish(), Digest::of_bytes(&data), "split at {split}");
        }
        assert_eq!(Hasher::restore_state(b"short").unwrap_err(), StateError);
        let mut long = Hasher::new().save_state();
        long.push(0);
        assert!(Hasher::restore_state(&long).is_err());
    }

    #[test]
    fn parse_rejects_wrong_forms() {
        let good = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(good.parse::<Digest>().is_ok());
        assert_eq!(good[7..].parse::<Digest>(), Err(DigestError::Algorithm));
        assert_eq!("sha512:00".parse::<Digest>(), Err(DigestError::Algorithm));
        assert_eq!(
            good.to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<Digest>(),
            Err(DigestError::Hex)
        );
        assert_eq!(format!("{good}0").parse::<Digest>(), Err(DigestError::Hex));
        assert_eq!(good[..70].parse::<Digest>(), Err(DigestError::Hex));
        assert_eq!(
            good.replace('e', "g").parse::<Digest>(),
            Err(DigestError::Hex)
        );
    }
}
