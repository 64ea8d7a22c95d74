//! STUB until helper "hpack" delivers (see HPACK-API): literal fields
//! without indexing and without Huffman only. Replaced by the merge.

pub struct HeaderField {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HpackError {
    Truncated,
    BadIndex(u64),
    IntegerOverflow,
    BadHuffman,
    TableSizeUpdateTooLarge(u64),
    TableSizeUpdateMisplaced,
    HeaderListTooLarge(usize),
}

impl std::fmt::Display for HpackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hpack: {self:?}")
    }
}

pub struct Decoder;

impl Decoder {
    pub fn new(_max_table_size: usize) -> Decoder {
        Decoder
    }

    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
    ) -> Result<Vec<HeaderField>, HpackError> {
        let mut out = Vec::new();
        let mut i = 0;
        let mut size = 0;
        while i < block.len() {
            if block[i] & 0xf0 != 0 {
                return Err(HpackError::BadIndex(block[i] as u64));
            }
            i += 1;
            let name = string(block, &mut i)?;
            let value = string(block, &mut i)?;
            size += name.len() + value.len() + 32;
            if size > max_list_size {
                return Err(HpackError::HeaderListTooLarge(size));
            }
            out.push(HeaderField { name, value });
        }
        Ok(out)
    }
}

fn int(b: &[u8], i: &mut usize, prefix: u8) -> Result<u64, HpackError> {
    let max = (1u64 << prefix) - 1;
    let first = *b.get(*i).ok_or(HpackError::Truncated)? as u64 & max;
    *i += 1;
    if first < max {
        return Ok(first);
    }
    let mut v = max;
    let mut shift = 0;
    loop {
        let c = *b.get(*i).ok_or(HpackError::Truncated)? as u64;
        *i += 1;
        v += (c & 0x7f) << shift;
        shift += 7;
        if c & 0x80 == 0 {
            return Ok(v);
        }
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

fn string(b: &[u8], i: &mut usize) -> Result<Vec<u8>, HpackError> {
    if b.get(*i).is_some_and(|c| c & 0x80 != 0) {
        return Err(HpackError::BadHuffman);
    }
    let n = int(b, i, 7)? as usize;
    let s = b.get(*i..*i + n).ok_or(HpackError::Truncated)?.to_vec();
    *i += n;
    Ok(s)
}

fn put_int(out: &mut Vec<u8>, first: u8, prefix: u8, mut v: usize) {
    let max = (1usize << prefix) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

#[derive(Default)]
pub struct Encoder;

impl Encoder {
    pub fn new() -> Encoder {
        Encoder
    }

    pub fn set_max_table_size(&mut self, _size: usize) {}

    pub fn encode<'a>(
        &mut self,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        out: &mut Vec<u8>,
    ) {
        for (n, v) in headers {
            out.push(0);
            put_int(out, 0, 7, n.len());
            out.extend_from_slice(n);
            put_int(out, 0, 7, v.len());
            out.extend_from_slice(v);
        }
    }
}
