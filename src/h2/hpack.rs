//! HPACK, HTTP/2 header compression (RFC 7541): a [`Decoder`] for the
//! header blocks a peer sends and an [`Encoder`] for ours.
//!
//! Own code rather than a crate: the `hpack` crate (0.3) has been
//! unmaintained since 2016 and builds its Huffman decoder as nested
//! HashMaps at run time; the maintained codecs live inside whole HTTP/2
//! stacks (h2 with tokio, bytes, http). Measured in a static musl release
//! binary (opt-level "s", LTO) doing one encode and decode: this module
//! adds 8 KB, `hpack` 0.3 adds 24 KB. What we need fits here and in
//! [`super::huffman`]: two tables that are facts of the RFC (the static
//! table of Appendix A, the Huffman code of Appendix B) and a dynamic table
//! of at most a few KB per connection direction.
//!
//! Every error is a COMPRESSION_ERROR for the connection (RFC 7540 4.3):
//! after one, the decoder's table no longer matches the peer's.

use super::huffman;
use std::collections::VecDeque;
use std::fmt;

/// One header field, as decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Why a header block could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HpackError {
    /// The block ended inside a representation.
    Truncated,
    /// An index that names no entry of the static or dynamic table.
    BadIndex(u64),
    /// An integer too large to be a length, index or size.
    IntegerOverflow,
    /// A Huffman string with EOS inside or bad padding (RFC 7541 5.2).
    BadHuffman,
    /// A dynamic table size update above our SETTINGS_HEADER_TABLE_SIZE.
    TableSizeUpdateTooLarge(u64),
    /// A dynamic table size update after the first header field of a block.
    TableSizeUpdateMisplaced,
    /// The decoded header list exceeds this many bytes (RFC 7540 6.5.2).
    HeaderListTooLarge(usize),
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => write!(f, "hpack: header block truncated"),
            HpackError::BadIndex(i) => write!(f, "hpack: index {i} out of range"),
            HpackError::IntegerOverflow => write!(f, "hpack: integer too large"),
            HpackError::BadHuffman => write!(f, "hpack: invalid Huffman string"),
            HpackError::TableSizeUpdateTooLarge(n) => {
                write!(
                    f,
                    "hpack: table size update to {n} above the advertised limit"
                )
            }
            HpackError::TableSizeUpdateMisplaced => {
                write!(f, "hpack: table size update after a header field")
            }
            HpackError::HeaderListTooLarge(n) => {
                write!(f, "hpack: header list larger than {n} bytes")
            }
        }
    }
}

impl std::error::Error for HpackError {}

/// The static table (RFC 7541 Appendix A); index 1 is the first entry.
const STATIC_TABLE: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),                   // 1
    (b":method", b"GET"),                   // 2
    (b":method", b"POST"),                  // 3
    (b":path", b"/"),                       // 4
    (b":path", b"/index.html"),             // 5
    (b":scheme", b"http"),                  // 6
    (b":scheme", b"https"),                 // 7
    (b":status", b"200"),                   // 8
    (b":status", b"204"),                   // 9
    (b":status", b"206"),                   // 10
    (b":status", b"304"),                   // 11
    (b":status", b"400"),                   // 12
    (b":status", b"404"),                   // 13
    (b":status", b"500"),                   // 14
    (b"accept-charset", b""),               // 15
    (b"accept-encoding", b"gzip, deflate"), // 16
    (b"accept-language", b""),              // 17
    (b"accept-ranges", b""),                // 18
    (b"accept", b""),                       // 19
    (b"access-control-allow-origin", b""),  // 20
    (b"age", b""),                          // 21
    (b"allow", b""),                        // 22
    (b"authorization", b""),                // 23
    (b"cache-control", b""),                // 24
    (b"content-disposition", b""),          // 25
    (b"content-encoding", b""),             // 26
    (b"content-language", b""),             // 27
    (b"content-length", b""),               // 28
    (b"content-location", b""),             // 29
    (b"content-range", b""),                // 30
    (b"content-type", b""),                 // 31
    (b"cookie", b""),                       // 32
    (b"date", b""),                         // 33
    (b"etag", b""),                         // 34
    (b"expect", b""),                       // 35
    (b"expires", b""),                      // 36
    (b"from", b""),                         // 37
    (b"host", b""),                         // 38
    (b"if-match", b""),                     // 39
    (b"if-modified-since", b""),            // 40
    (b"if-none-match", b""),                // 41
    (b"if-range", b""),                     // 42
    (b"if-unmodified-since", b""),          // 43
    (b"last-modified", b""),                // 44
    (b"link", b""),                         // 45
    (b"location", b""),                     // 46
    (b"max-forwards", b""),                 // 47
    (b"proxy-authenticate", b""),           // 48
    (b"proxy-authorization", b""),          // 49
    (b"range", b""),                        // 50
    (b"referer", b""),                      // 51
    (b"refresh", b""),                      // 52
    (b"retry-after", b""),                  // 53
    (b"server", b""),                       // 54
    (b"set-cookie", b""),                   // 55
    (b"strict-transport-security", b""),    // 56
    (b"transfer-encoding", b""),            // 57
    (b"user-agent", b""),                   // 58
    (b"vary", b""),                         // 59
    (b"via", b""),                          // 60
    (b"www-authenticate", b""),             // 61
];

/// The peer's table size before any SETTINGS (RFC 7540 6.5.2).
const DEFAULT_TABLE_SIZE: usize = 4096;

/// Per-entry overhead counted in table and header list sizes (RFC 7541 4.1).
const ENTRY_OVERHEAD: usize = 32;

/// Largest integer we accept: far above any sane length, index or size,
/// and small enough that no arithmetic on it can overflow.
const MAX_INT: u64 = u32::MAX as u64;

fn entry_size(name: &[u8], value: &[u8]) -> usize {
    name.len() + value.len() + ENTRY_OVERHEAD
}

/// The dynamic table: newest entry first, evicting the oldest to stay
/// within `max_size` (RFC 7541 2.3.2, 4).
#[derive(Debug, Default)]
struct DynamicTable {
    entries: VecDeque<(Vec<u8>, Vec<u8>)>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    fn new(max_size: usize) -> DynamicTable {
        DynamicTable {
            max_size,
            ..DynamicTable::default()
        }
    }

    fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let Some((name, value)) = self.entries.pop_back() else {
                break;
            };
            self.size -= entry_size(&name, &value);
        }
    }

    /// Adds an entry; one larger than the whole table empties it instead
    /// (RFC 7541 4.4).
    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = entry_size(&name, &value);
        if size > self.max_size {
            self.entries.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.entries.push_front((name, value));
    }

    /// The entry at a combined index (62 = newest dynamic entry).
    fn get(&self, index: u64) -> Option<(&[u8], &[u8])> {
        let i = usize::try_from(index).ok()?;
        match i {
            0 => None,
            1..=61 => Some(STATIC_TABLE[i - 1]),
            _ => self
                .entries
                .get(i - 62)
                .map(|(n, v)| (n.as_slice(), v.as_slice())),
        }
    }
}

/// Decodes the header blocks of one connection direction.
#[derive(Debug)]
pub struct Decoder {
    table: DynamicTable,
    /// Our SETTINGS_HEADER_TABLE_SIZE: no size update may exceed it.
    max_table_size: usize,
}

impl Decoder {
    /// `max_table_size`: our SETTINGS_HEADER_TABLE_SIZE (the bound a peer's
    /// size update may not exceed).
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_table_size),
            max_table_size,
        }
    }

    /// Decode one complete header block (HEADERS + CONTINUATION fragments
    /// joined). Fails once the decoded list exceeds `max_list_size` bytes
    /// (RFC 7540 6.5.2 size: name+value+32 each).
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
    ) -> Result<Vec<HeaderField>, HpackError> {
        let mut input = Input { buf: block, pos: 0 };
        let mut fields = Vec::new();
        let mut list_size = 0usize;
        while let Some(&first) = input.buf.get(input.pos) {
            let (name, value, index) = if first & 0x80 != 0 {
                // Indexed header field (6.1).
                let index = input.integer(7)?;
                let (name, value) = self.table.get(index).ok_or(HpackError::BadIndex(index))?;
                (name.to_vec(), value.to_vec(), false)
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (6.3): only before the first field.
                if !fields.is_empty() {
                    return Err(HpackError::TableSizeUpdateMisplaced);
                }
                let size = input.integer(5)?;
                if size > self.max_table_size as u64 {
                    return Err(HpackError::TableSizeUpdateTooLarge(size));
                }
                self.table.set_max_size(size as usize);
                continue;
            } else {
                // Literal (6.2): with incremental indexing (01), without
                // (0000) or never indexed (0001).
                let (prefix, index) = if first & 0x40 != 0 {
                    (6, true)
                } else {
                    (4, false)
                };
                let name_index = input.integer(prefix)?;
                let name = if name_index == 0 {
                    input.string()?
                } else {
                    let (name, _) = self
                        .table
                        .get(name_index)
                        .ok_or(HpackError::BadIndex(name_index))?;
                    name.to_vec()
                };
                (name, input.string()?, index)
            };
            list_size = list_size.saturating_add(entry_size(&name, &value));
            if list_size > max_list_size {
                return Err(HpackError::HeaderListTooLarge(max_list_size));
            }
            if index {
                self.table.insert(name.clone(), value.clone());
            }
            fields.push(HeaderField { name, value });
        }
        Ok(fields)
    }
}

/// A cursor over one header block.
struct Input<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<u8, HpackError> {
        let b = *self.buf.get(self.pos).ok_or(HpackError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    /// An integer with an N-bit prefix (RFC 7541 5.1).
    fn integer(&mut self, prefix_bits: u32) -> Result<u64, HpackError> {
        let max_prefix = (1u64 << prefix_bits) - 1;
        let mut value = u64::from(self.byte()?) & max_prefix;
        if value < max_prefix {
            return Ok(value);
        }
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            // Past 35 bits of continuation the value cannot fit MAX_INT
            // (this also stops endless 0x80 bytes).
            if shift > 28 {
                return Err(HpackError::IntegerOverflow);
            }
            value += u64::from(b & 0x7f) << shift;
            if value > MAX_INT {
                return Err(HpackError::IntegerOverflow);
            }
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
        }
    }

    /// A string literal, Huffman-coded or raw (RFC 7541 5.2).
    fn string(&mut self) -> Result<Vec<u8>, HpackError> {
        let huffman = self.buf.get(self.pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
        let len = self.integer(7)? as usize;
        let end = self.pos.checked_add(len).ok_or(HpackError::Truncated)?;
        let raw = self.buf.get(self.pos..end).ok_or(HpackError::Truncated)?;
        self.pos = end;
        if !huffman {
            return Ok(raw.to_vec());
        }
        let mut out = Vec::with_capacity(len + len / 2);
        huffman::decode(raw, &mut out).map_err(|_| HpackError::BadHuffman)?;
        Ok(out)
    }
}

/// Names whose values are secrets: never indexed, so an intermediary does
/// not put them in a table (RFC 7541 7.1.3).
const SENSITIVE: [&[u8]; 2] = [b"authorization", b"proxy-authorization"];

/// Names whose values differ on nearly every message: indexing them would
/// only churn the table.
const UNINDEXED: [&[u8]; 2] = [b"content-length", b"grpc-timeout"];

/// The most table we use, whatever the peer allows: gRPC headers are few
/// and small, and every connection holds a table.
const ENCODER_TABLE_CAP: usize = DEFAULT_TABLE_SIZE;

/// Encodes our header blocks for one connection direction.
#[derive(Debug)]
pub struct Encoder {
    table: DynamicTable,
    /// Size updates owed at the start of the next block: the smallest size
    /// since the last block (if below the final one), then the final size
    /// (RFC 7541 4.2).
    pending_min: Option<usize>,
    pending: bool,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    /// The peer's table size is 4096 until told otherwise.
    pub fn new() -> Encoder {
        Encoder {
            table: DynamicTable::new(DEFAULT_TABLE_SIZE),
            pending_min: None,
            pending: false,
        }
    }

    /// The peer's SETTINGS_HEADER_TABLE_SIZE changed: emits a size update
    /// at the start of the next block.
    pub fn set_max_table_size(&mut self, size: usize) {
        let size = size.min(ENCODER_TABLE_CAP);
        if size == self.table.max_size && !self.pending {
            return;
        }
        self.pending_min = Some(self.pending_min.map_or(size, |m| m.min(size)));
        self.pending = true;
        self.table.set_max_size(size);
    }

    /// Append one header block for `headers` to `out`. Static-table
    /// names/values used; fields may go through the dynamic table; Huffman
    /// used unless longer. `sensitive` names (e.g. authorization) are
    /// encoded never-indexed.
    pub fn encode<'a>(
        &mut self,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        out: &mut Vec<u8>,
    ) {
        if self.pending {
            let size = self.table.max_size;
            if let Some(min) = self.pending_min.take().filter(|&m| m < size) {
                put_integer(out, 0x20, 5, min);
            }
            put_integer(out, 0x20, 5, size);
            self.pending = false;
        }
        for (name, value) in headers {
            self.field(name, value, out);
        }
    }

    fn field(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        let sensitive = SENSITIVE.contains(&name);
        let (exact, name_index) = self.find(name, value);
        if let (Some(index), false) = (exact, sensitive) {
            put_integer(out, 0x80, 7, index);
            return;
        }
        let indexing = !sensitive
            && !UNINDEXED.contains(&name)
            && entry_size(name, value) <= self.table.max_size * 3 / 4;
        let (flags, prefix) = match (sensitive, indexing) {
            (true, _) => (0x10, 4),
            (false, true) => (0x40, 6),
            (false, false) => (0x00, 4),
        };
        match name_index {
            Some(index) => put_integer(out, flags, prefix, index),
            None => {
                out.push(flags);
                put_string(out, name);
            }
        }
        put_string(out, value);
        if indexing {
            self.table.insert(name.to_vec(), value.to_vec());
        }
    }

    /// The index of an entry equal to (name, value), and of one with this
    /// name, preferring the static table for names (it never moves).
    fn find(&self, name: &[u8], value: &[u8]) -> (Option<usize>, Option<usize>) {
        let mut name_index = None;
        for (i, &(n, v)) in STATIC_TABLE.iter().enumerate() {
            if n == name {
                if v == value {
                    return (Some(i + 1), Some(i + 1));
                }
                name_index.get_or_insert(i + 1);
            }
        }
        for (i, (n, v)) in self.table.entries.iter().enumerate() {
            if n == name {
                if v == value {
                    return (Some(62 + i), name_index.or(Some(62 + i)));
                }
                name_index.get_or_insert(62 + i);
            }
        }
        (None, name_index)
    }
}

/// Appends an integer with an N-bit prefix after the `flags` bits
/// (RFC 7541 5.1).
fn put_integer(out: &mut Vec<u8>, flags: u8, prefix_bits: u32, value: usize) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Appends a string literal, Huffman-coded unless that is longer (on a
/// tie Huffman, as the examples of RFC 7541 Appendix C do).
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    let huffman_len = huffman::encoded_len(s);
    if !s.is_empty() && huffman_len <= s.len() {
        put_integer(out, 0x80, 7, huffman_len);
        huffman::encode(s, out);
    } else {
        put_integer(out, 0x00, 7, s.len());
        out.extend_from_slice(s);
    }
}

#[cfg(test)]
mod tests;
