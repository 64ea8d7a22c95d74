use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

type Pairs<'a> = &'a [(&'a str, &'a str)];

/// One example of RFC 7541 Appendix C: the block, the header list it
/// decodes to and the dynamic table after it (newest first).
struct Example<'a> {
    block: &'a str,
    headers: Pairs<'a>,
    table: Pairs<'a>,
    table_size: usize,
}

fn check_example(decoder: &mut Decoder, id: &str, ex: &Example) {
    let got = decoder
        .decode(&hex(ex.block), usize::MAX)
        .unwrap_or_else(|e| panic!("{id}: {e}"));
    let want: Vec<HeaderField> = ex
        .headers
        .iter()
        .map(|(n, v)| HeaderField {
            name: n.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        })
        .collect();
    assert_eq!(got, want, "{id}: header list");
    let table: Vec<(&[u8], &[u8])> = decoder
        .table
        .entries
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let want_table: Vec<(&[u8], &[u8])> = ex
        .table
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
        .collect();
    assert_eq!(table, want_table, "{id}: dynamic table");
    assert_eq!(decoder.table.size, ex.table_size, "{id}: table size");
}

const GET_1: Pairs = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const GET_2: Pairs = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const GET_3: Pairs = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const TABLE_1: Pairs = &[(":authority", "www.example.com")];
const TABLE_2: Pairs = &[
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];
const TABLE_3: Pairs = &[
    ("custom-key", "custom-value"),
    ("cache-control", "no-cache"),
    (":authority", "www.example.com"),
];

const DATE_1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE_2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOCATION: &str = "https://www.example.com";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESP_1: Pairs = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", DATE_1),
    ("location", LOCATION),
];
const RESP_2: Pairs = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", DATE_1),
    ("location", LOCATION),
];
const RESP_3: Pairs = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", DATE_2),
    ("location", LOCATION),
    ("content-encoding", "gzip"),
    ("set-cookie", COOKIE),
];
const RTABLE_1: Pairs = &[
    ("location", LOCATION),
    ("date", DATE_1),
    ("cache-control", "private"),
    (":status", "302"),
];
const RTABLE_2: Pairs = &[
    (":status", "307"),
    ("location", LOCATION),
    ("date", DATE_1),
    ("cache-control", "private"),
];
const RTABLE_3: Pairs = &[
    ("set-cookie", COOKIE),
    ("content-encoding", "gzip"),
    ("date", DATE_2),
];

/// C.3 (raw strings) and C.4 (Huffman): three requests on one connection.
const C3: [Example; 3] = [
    Example {
        block: "828684410f7777772e6578616d706c652e636f6d",
        headers: GET_1,
        table: TABLE_1,
        table_size: 57,
    },
    Example {
        block: "828684be58086e6f2d6361636865",
        headers: GET_2,
        table: TABLE_2,
        table_size: 110,
    },
    Example {
        block: "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
        headers: GET_3,
        table: TABLE_3,
        table_size: 164,
    },
];
const C4: [Example; 3] = [
    Example {
        block: "828684418cf1e3c2e5f23a6ba0ab90f4ff",
        headers: GET_1,
        table: TABLE_1,
        table_size: 57,
    },
    Example {
        block: "828684be5886a8eb10649cbf",
        headers: GET_2,
        table: TABLE_2,
        table_size: 110,
    },
    Example {
        block: "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
        headers: GET_3,
        table: TABLE_3,
        table_size: 164,
    },
];
/// C.5 (raw) and C.6 (Huffman): three responses with a 256-byte table, so
/// entries are evicted.
const C5: [Example; 3] = [
    Example {
        block: "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
        headers: RESP_1,
        table: RTABLE_1,
        table_size: 222,
    },
    Example {
        block: "4803333037c1c0bf",
        headers: RESP_2,
        table: RTABLE_2,
        table_size: 222,
    },
    Example {
        block: "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31",
        headers: RESP_3,
        table: RTABLE_3,
        table_size: 215,
    },
];
const C6: [Example; 3] = [
    Example {
        block: "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3",
        headers: RESP_1,
        table: RTABLE_1,
        table_size: 222,
    },
    Example {
        block: "4883640effc1c0bf",
        headers: RESP_2,
        table: RTABLE_2,
        table_size: 222,
    },
    Example {
        block: "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
        headers: RESP_3,
        table: RTABLE_3,
        table_size: 215,
    },
];

#[test]
fn rfc_7541_c1_integers() {
    let mut out = Vec::new();
    put_integer(&mut out, 0, 5, 10);
    put_integer(&mut out, 0, 5, 1337);
    put_integer(&mut out, 0, 8, 42);
    assert_eq!(out, [0x0a, 0x1f, 0x9a, 0x0a, 0x2a]);
    let mut input = Input { buf: &out, pos: 0 };
    assert_eq!(input.integer(5), Ok(10));
    assert_eq!(input.integer(5), Ok(1337));
    assert_eq!(input.integer(8), Ok(42));
    for prefix in 1..=8 {
        for v in [0, 1, 30, 31, 126, 127, 128, 255, 300, 4096, 65535, 1 << 31] {
            let mut out = vec![];
            put_integer(&mut out, 0, prefix, v);
            let mut input = Input { buf: &out, pos: 0 };
            assert_eq!(
                input.integer(prefix),
                Ok(v as u64),
                "{v} with {prefix}-bit prefix"
            );
            assert_eq!(input.pos, out.len());
        }
    }
}

#[test]
fn rfc_7541_c2_literals() {
    let mut d = Decoder::new(4096);
    let c21 = Example {
        block: "400a637573746f6d2d6b65790d637573746f6d2d686561646572",
        headers: &[("custom-key", "custom-header")],
        table: &[("custom-key", "custom-header")],
        table_size: 55,
    };
    check_example(&mut d, "C.2.1", &c21);
    let c22 = Example {
        block: "040c2f73616d706c652f70617468",
        headers: &[(":path", "/sample/path")],
        table: &[],
        table_size: 0,
    };
    check_example(&mut Decoder::new(4096), "C.2.2", &c22);
    let c23 = Example {
        block: "100870617373776f726406736563726574",
        headers: &[("password", "secret")],
        table: &[],
        table_size: 0,
    };
    check_example(&mut Decoder::new(4096), "C.2.3", &c23);
    let c24 = Example {
        block: "82",
        headers: &[(":method", "GET")],
        table: &[],
        table_size: 0,
    };
    check_example(&mut Decoder::new(4096), "C.2.4", &c24);
}

#[test]
fn rfc_7541_c3_to_c6_decode() {
    for (name, examples, table) in [
        ("C.3", &C3, 4096),
        ("C.4", &C4, 4096),
        ("C.5", &C5, 256),
        ("C.6", &C6, 256),
    ] {
        let mut d = Decoder::new(table);
        for (i, ex) in examples.iter().enumerate() {
            check_example(&mut d, &format!("{name}.{}", i + 1), ex);
        }
    }
}

#[test]
fn rfc_7541_c4_c6_encode() {
    // Our encoder chooses what the RFC's examples chose: static matches,
    // incremental indexing, Huffman when shorter.
    let mut e = Encoder::new();
    for (i, ex) in C4.iter().enumerate() {
        let mut out = Vec::new();
        e.encode(
            ex.headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut out,
        );
        assert_eq!(to_hex(&out), ex.block, "C.4.{}", i + 1);
    }
    // C.6 with a 256-byte table: after the size update that announces it.
    let mut e = Encoder::new();
    e.set_max_table_size(256);
    for (i, ex) in C6.iter().enumerate() {
        let mut out = Vec::new();
        e.encode(
            ex.headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            &mut out,
        );
        let want = if i == 0 {
            format!("3fe101{}", ex.block)
        } else {
            ex.block.to_string()
        };
        assert_eq!(to_hex(&out), want, "C.6.{}", i + 1);
        let table: Vec<(&[u8], &[u8])> = e
            .table
            .entries
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        let want_table: Vec<(&[u8], &[u8])> = ex
            .table
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
            .collect();
        assert_eq!(table, want_table, "C.6.{} encoder table", i + 1);
    }
}

fn decode_err(block: &str) -> HpackError {
    Decoder::new(4096)
        .decode(&hex(block), usize::MAX)
        .unwrap_err()
}

#[test]
fn bad_blocks_are_rejected() {
    assert_eq!(decode_err("80"), HpackError::BadIndex(0));
    assert_eq!(decode_err("be"), HpackError::BadIndex(62)); // empty dynamic table
    assert_eq!(decode_err("ff07"), HpackError::BadIndex(134));
    assert_eq!(decode_err("7f00"), HpackError::BadIndex(63)); // literal, name index
    assert_eq!(
        HpackError::BadIndex(70).to_string(),
        "hpack: index 70 out of range"
    );
    // Truncated: in an integer, a length, a string, after a name.
    assert_eq!(decode_err("ff"), HpackError::Truncated);
    assert_eq!(decode_err("ff80"), HpackError::Truncated);
    assert_eq!(decode_err("40"), HpackError::Truncated);
    assert_eq!(decode_err("4003616263"), HpackError::Truncated);
    assert_eq!(decode_err("400361"), HpackError::Truncated);
    assert_eq!(decode_err("0f"), HpackError::Truncated);
    // Integers: above 2^32, and endless continuation bytes.
    assert_eq!(decode_err("ffffffffff0f"), HpackError::IntegerOverflow);
    assert_eq!(
        decode_err("ff8080808080808080808000"),
        HpackError::IntegerOverflow
    );
    assert_eq!(decode_err("007fffffffff7f"), HpackError::IntegerOverflow);
    // Huffman: EOS inside, padding of 8 bits, padding not ones.
    assert_eq!(decode_err("00016184ffffffff"), HpackError::BadHuffman);
    assert_eq!(decode_err("000161821fff"), HpackError::BadHuffman);
    assert_eq!(decode_err("0001618118"), HpackError::BadHuffman);
    assert_eq!(decode_err("00016181ff"), HpackError::BadHuffman);
}

#[test]
fn table_size_updates() {
    // Above the settings bound.
    let mut d = Decoder::new(4096);
    assert_eq!(
        d.decode(&hex("3fe21f"), usize::MAX),
        Err(HpackError::TableSizeUpdateTooLarge(4097))
    );
    // After a field of the same block.
    let mut d = Decoder::new(4096);
    assert_eq!(
        d.decode(&hex("823f11"), usize::MAX),
        Err(HpackError::TableSizeUpdateMisplaced)
    );
    // At the start: allowed, twice (4.2), and it evicts.
    let mut d = Decoder::new(4096);
    d.decode(&hex(C3[0].block), usize::MAX).unwrap();
    d.decode(&hex(C3[1].block), usize::MAX).unwrap();
    assert_eq!(d.table.size, 110);
    // Shrink to 60: only the newest entry (cache-control, 53) stays.
    d.decode(&hex("3f1d"), usize::MAX).unwrap();
    assert_eq!(d.table.size, 53);
    assert_eq!(d.table.entries.len(), 1);
    // To 0 and back to 4096 in one block, then a field: the table is empty.
    assert_eq!(
        d.decode(&hex("203fe11f82"), usize::MAX).unwrap(),
        [HeaderField {
            name: b":method".to_vec(),
            value: b"GET".to_vec()
        }]
    );
    assert_eq!(d.table.size, 0);
    assert_eq!(
        d.decode(&hex("be"), usize::MAX),
        Err(HpackError::BadIndex(62))
    );
    // A settings bound of 0: an entry never fits, the field still decodes.
    let mut d = Decoder::new(0);
    d.decode(&hex(C3[0].block), usize::MAX).unwrap();
    assert_eq!(d.table.size, 0);
}

#[test]
fn header_list_size_bound() {
    // C.3.1: 4 fields of sizes 42+43+38+57 = 180.
    let block = hex(C3[0].block);
    assert!(Decoder::new(4096).decode(&block, 180).is_ok());
    assert_eq!(
        Decoder::new(4096).decode(&block, 179),
        Err(HpackError::HeaderListTooLarge(179))
    );
}

#[test]
fn encoder_indexes_repeats_and_never_indexes_secrets() {
    let mut e = Encoder::new();
    let headers: [(&[u8], &[u8]); 4] = [
        (b":path", b"/containerd.services.tasks.v1.Tasks/Get"),
        (b"content-type", b"application/grpc"),
        (b"authorization", b"Bearer secret"),
        (b"grpc-timeout", b"100m"),
    ];
    let mut first = Vec::new();
    e.encode(headers, &mut first);
    let mut second = Vec::new();
    e.encode(headers, &mut second);
    // Path and content type become one index byte each; the secret and
    // the timeout are literals again.
    assert!(
        second.len() < first.len() - 30,
        "{} vs {}",
        second.len(),
        first.len()
    );
    let mut d = Decoder::new(4096);
    for block in [&first, &second] {
        let got = d.decode(block, usize::MAX).unwrap();
        let got: Vec<(&[u8], &[u8])> = got.iter().map(|f| (&f.name[..], &f.value[..])).collect();
        assert_eq!(got, headers);
    }
    // Never-indexed form (0001) with the static name index 23.
    assert!(
        second.windows(1).any(|w| w[0] == 0x1f),
        "{}",
        to_hex(&second)
    );
    assert_eq!(d.table.entries.len(), 2);
    // Too big for the table: sent as a literal, nothing evicted wrongly.
    let big = vec![b'x'; 5000];
    let mut out = Vec::new();
    e.encode([(&b"x-big"[..], &big[..])], &mut out);
    let got = d.decode(&out, usize::MAX).unwrap();
    assert_eq!(got[0].value, big);
    assert_eq!(e.table.size, d.table.size);
}

#[test]
fn encoder_size_updates() {
    let mut e = Encoder::new();
    e.encode([(&b"a"[..], &b"b"[..])], &mut Vec::new());
    e.set_max_table_size(0);
    e.set_max_table_size(1000);
    let mut out = Vec::new();
    e.encode([(&b":method"[..], &b"GET"[..])], &mut out);
    // Smallest size first, then the final one (RFC 7541 4.2).
    assert_eq!(to_hex(&out), "203fc90782");
    // Above our cap of 4096: we keep 4096 and need not say so.
    e.set_max_table_size(4096);
    e.set_max_table_size(1 << 20);
    let mut out = Vec::new();
    e.encode([(&b":method"[..], &b"GET"[..])], &mut out);
    assert_eq!(to_hex(&out), "3fe11f82");
    let mut out = Vec::new();
    e.set_max_table_size(1 << 20);
    e.encode([(&b":method"[..], &b"GET"[..])], &mut out);
    assert_eq!(to_hex(&out), "82");
}

// ---- Round trips against an independent implementation: python3-hpack ----

const PYTHON: &str = "/usr/bin/python3";

/// Encodes header lists (one per input line: `name:value:s|-` fields in
/// hex, separated by spaces) into one hex block per output line. A line
/// `size N` changes the table size.
const PY_ENCODE: &str = r#"
import sys, hpack
from hpack import HeaderTuple, NeverIndexedHeaderTuple
e = hpack.Encoder()
huffman = sys.argv[1] == "1"
for line in sys.stdin:
    line = line.strip()
    if line.startswith("size "):
        e.header_table_size = int(line[5:]); continue
    hs = []
    for f in line.split():
        n, v, s = f.split(":")
        t = NeverIndexedHeaderTuple if s == "s" else HeaderTuple
        hs.append(t(bytes.fromhex(n), bytes.fromhex(v)))
    print(e.encode(hs, huffman=huffman).hex(), flush=True)
"#;

/// Decodes one hex block per line into the same field format (`s` for
/// never-indexed fields).
const PY_DECODE: &str = r#"
import sys, hpack
d = hpack.Decoder(max_header_list_size=1 << 30)
d.max_allowed_table_size = 4096
for line in sys.stdin:
    hs = d.decode(bytes.fromhex(line.strip()), raw=True)
    print(" ".join("%s:%s:%s" % (n.hex(), v.hex(), "s" if not h.indexable else "-") for h in hs for n, v in [h]), flush=True)
"#;

fn python_hpack() -> bool {
    let ok = std::process::Command::new(PYTHON)
        .args(["-c", "import hpack"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let why = format!("{PYTHON} with hpack (python3-hpack) missing");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("missing prerequisite: {why} (make test installs it; CI=true)");
        }
        eprintln!("skipped: {why}");
    }
    ok
}

fn python(script: &str, args: &[&str], input: &str) -> Vec<String> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A header list: field name, value, sensitive.
type List = Vec<(Vec<u8>, Vec<u8>, bool)>;

/// Header lists a gRPC connection and a hostile peer might send: repeats,
/// static matches, new names, long and binary values, empty strings,
/// secrets.
fn sample_lists() -> Vec<List> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let fixed: [(&[u8], &[u8]); 8] = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/containerd.services.tasks.v1.Tasks/Create"),
        (b":authority", b"localhost"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"user-agent", b"grpc-go/1.59.0"),
        (b"containerd-namespace", b"default"),
    ];
    let mut lists = Vec::new();
    for round in 0..60 {
        let mut list: List = Vec::new();
        for &(n, v) in &fixed[..2 + round % 7] {
            list.push((n.to_vec(), v.to_vec(), false));
        }
        for _ in 0..next() % 6 {
            let r = next();
            let name = format!("x-h{}", r % 13).into_bytes();
            let len = match r % 5 {
                0 => 0,
                1 => 200,
                2 => 3000,
                _ => (r >> 8) as usize % 40,
            };
            let binary = r % 3 == 0;
            let value: Vec<u8> = (0..len)
                .map(|i| {
                    let x = next();
                    if binary {
                        x as u8
                    } else {
                        b"abcdefghijklmnopqrstuvwxyz0123456789-_/."[(x % 40) as usize]
                            ^ (i == usize::MAX) as u8
                    }
                })
                .collect();
            list.push((name, value, false));
        }
        if round % 5 == 0 {
            list.push((b"authorization".to_vec(), b"Bearer abc".to_vec(), true));
        }
        if round % 9 == 0 {
            list.push((Vec::new(), Vec::new(), false));
        }
        list.push((
            b":status".to_vec(),
            format!("{}", 200 + round % 3).into_bytes(),
            false,
        ));
        lists.push(list);
    }
    lists
}

fn line_of(list: &List) -> String {
    list.iter()
        .map(|(n, v, s)| format!("{}:{}:{}", to_hex(n), to_hex(v), if *s { "s" } else { "-" }))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn python_hpack_blocks_decode() {
    if !python_hpack() {
        return;
    }
    let lists = sample_lists();
    for huffman in ["0", "1"] {
        // Change the table size midway: python sends the update.
        let mut input = String::new();
        for (i, list) in lists.iter().enumerate() {
            if i == 20 {
                input.push_str("size 300\n");
            }
            if i == 40 {
                input.push_str("size 4096\n");
            }
            input.push_str(&line_of(list));
            input.push('\n');
        }
        let blocks = python(PY_ENCODE, &[huffman], &input);
        assert_eq!(blocks.len(), lists.len());
        let mut d = Decoder::new(4096);
        for (i, (block, list)) in blocks.iter().zip(&lists).enumerate() {
            let got = d
                .decode(&hex(block), usize::MAX)
                .unwrap_or_else(|e| panic!("block {i} (huffman {huffman}): {e}: {block}"));
            let want: Vec<HeaderField> = list
                .iter()
                .map(|(n, v, _)| HeaderField {
                    name: n.clone(),
                    value: v.clone(),
                })
                .collect();
            assert_eq!(got, want, "block {i} (huffman {huffman})");
        }
    }
}

#[test]
fn our_blocks_decode_in_python_hpack() {
    if !python_hpack() {
        return;
    }
    let lists = sample_lists();
    let mut e = Encoder::new();
    let mut input = String::new();
    for (i, list) in lists.iter().enumerate() {
        if i == 20 {
            e.set_max_table_size(300);
        }
        if i == 30 {
            e.set_max_table_size(0);
            e.set_max_table_size(2000);
        }
        let mut out = Vec::new();
        e.encode(list.iter().map(|(n, v, _)| (&n[..], &v[..])), &mut out);
        input.push_str(&to_hex(&out));
        input.push('\n');
    }
    let decoded = python(PY_DECODE, &[], &input);
    assert_eq!(decoded.len(), lists.len());
    for (i, (line, list)) in decoded.iter().zip(&lists).enumerate() {
        // Secrets come back never-indexed; everything else as sent.
        assert_eq!(line, &line_of(list), "block {i}");
    }
}
