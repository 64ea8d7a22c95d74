//! STUB (helper "hpack" writes the Huffman code).
