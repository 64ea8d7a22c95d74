//! Content digests (`sha256:<hex>`) and a writer that verifies size and
//! digest while the bytes stream through it.

use crate::error::{Error, Result};
use std::fmt;
use std::io::{self, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
    fn ring(self) -> &'static ring::digest::Algorithm {
        match self {
            Algorithm::Sha256 => &ring::digest::SHA256,
            Algorithm::Sha512 => &ring::digest::SHA512,
        }
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    algo: Algorithm,
    ctx: ring::digest::Context,
}

impl<R: std::io::Read> HashingReader<R> {
    pub fn new(inner: R, algo: Algorithm) -> Self {
        HashingReader {
            inner,
            algo,
            ctx: ring::digest::Context::new(algo.ring()),
        }
    }

    /// The digest of what was read.
    pub fn finish(self) -> Digest {
        Digest::from_ring(self.algo, self.ctx.finish())
    }
}

impl<R: std::io::Read> std::io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.ctx.update(&buf[..n]);
        Ok(n)
    }
}

/// A validated digest: a known algorithm and its lowercase hex encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algo: Algorithm,
    hex: String,
}

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| Error::new(format!("invalid digest {s:?}: expected ALGORITHM:HEX")))?;
        let algo = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(Error::new(format!(
                    "invalid digest {s:?}: unsupported algorithm {algo:?}"
                )))
            }
        };
        if hex.len() != algo.hex_len()
            || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(Error::new(format!(
                "invalid digest {s:?}: expected {} lowercase hex digits",
                algo.hex_len()
            )));
        }
        Ok(Digest {
            algo,
            hex: hex.to_string(),
        })
    }

    /// The SHA-256 digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_ring(
            Algorithm::Sha256,
            ring::digest::digest(&ring::digest::SHA256, data),
        )
    }

    fn from_ring(algo: Algorithm, d: ring::digest::Digest) -> Digest {
        Digest {
            algo,
            hex: to_hex(d.as_ref()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algo
    }
    pub fn hex(&self) -> &str {
        &self.hex
    }
    /// Short form for humans: the first 12 hex digits.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo.name(), self.hex)
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Content that is not what its descriptor says: FailedPrecondition, as
/// containerd's content commit answers ("unexpected commit digest").
fn mismatch(msg: String) -> Error {
    Error::of(crate::Kind::FailedPrecondition, msg)
}

/// Check a complete in-memory blob against its descriptor.
pub fn verify_bytes(data: &[u8], digest: &Digest, size: u64) -> Result<()> {
    if data.len() as u64 != size {
        return Err(mismatch(format!(
            "blob {digest}: size mismatch: expected {size} bytes, got {}",
            data.len()
        )));
    }
    let got = Digest::from_ring(digest.algo, ring::digest::digest(digest.algo.ring(), data));
    if &got != digest {
        return Err(mismatch(format!(
            "blob {digest}: digest mismatch: content hashes to {got}"
        )));
    }
    Ok(())
}

/// Hashes what passes through and counts it; refuses to take more than the
/// expected size, so a lying server cannot fill the disk.
pub struct Verifier<W> {
    inner: W,
    ctx: ring::digest::Context,
    expected: Digest,
    size: u64,
    written: u64,
}

impl<W: Write> Verifier<W> {
    pub fn new(inner: W, expected: &Digest, size: u64) -> Self {
        Verifier {
            inner,
            ctx: ring::digest::Context::new(expected.algo.ring()),
            expected: expected.clone(),
            size,
            written: 0,
        }
    }

    /// Feed bytes already present (a resumed download) without writing them.
    pub fn absorb(&mut self, data: &[u8]) {
        self.ctx.update(data);
        self.written += data.len() as u64;
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Check size and digest; returns the inner writer when both match.
    pub fn finish(self) -> Result<W> {
        if self.written != self.size {
            return Err(mismatch(format!(
                "blob {}: size mismatch: expected {} bytes, got {}",
                self.expected, self.size, self.written
            )));
        }
        let got = Digest::from_ring(self.expected.algo, self.ctx.finish());
        if got != self.expected {
            return Err(mismatch(format!(
                "blob {}: digest mismatch: content hashes to {got}",
                self.expected
            )));
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for Verifier<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.size {
            return Err(io::Error::other(format!(
                "blob {}: more data than the expected {} bytes",
                self.expected, self.size
            )));
        }
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_rejects() {
        assert_eq!(Digest::parse(EMPTY).unwrap().to_string(), EMPTY);
        assert_eq!(Digest::of(b""), Digest::parse(EMPTY).unwrap());
        for bad in [
            "sha256",
            "md5:abcd",
            "sha256:ABC",
            &EMPTY.to_uppercase(),
            &EMPTY[..70],
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verifier_checks_digest_and_size() {
        let d = Digest::of(b"hello");
        let mut v = Verifier::new(Vec::new(), &d, 5);
        v.write_all(b"hel").unwrap();
        v.write_all(b"lo").unwrap();
        assert_eq!(v.finish().unwrap(), b"hello");

        let mut v = Verifier::new(Vec::new(), &d, 5);
        v.write_all(b"hellO").unwrap();
        assert!(v
            .finish()
            .unwrap_err()
            .message()
            .contains("digest mismatch"));

        let mut v = Verifier::new(Vec::new(), &d, 5);
        assert!(v.write_all(b"hello!").is_err());

        let mut v = Verifier::new(Vec::new(), &d, 5);
        v.absorb(b"he");
        v.write_all(b"llo").unwrap();
        assert_eq!(v.finish().unwrap(), b"llo");
        assert!(verify_bytes(b"hell", &d, 5).is_err());
    }
}
