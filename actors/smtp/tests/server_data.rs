//! Tests of the DATA reader on its own: dot-unstuffing, the only terminator, smuggling
//! sequences, size and line limits, and identical results for every chunking.

use impulse_smtp::data::{DataError, DataReader, Feed};

/// The reader's result and the bytes after the terminator; None without a terminator.
type Outcome = Option<(Result<Vec<u8>, DataError>, Vec<u8>)>;

/// Feeds `input` in the given chunks; returns the result and the bytes left after the
/// terminator (None if the terminator never came).
fn read(input: &[u8], chunks: &[usize], max_size: u64, max_line: usize) -> Outcome {
    let mut reader = DataReader::new(max_size, max_line);
    let mut start = 0;
    let mut bounds: Vec<usize> = chunks.to_vec();
    bounds.push(input.len());
    for end in bounds {
        let end = end.clamp(start, input.len());
        let chunk = &input[start..end];
        if let Feed::Done { consumed } = reader.feed(chunk) {
            assert!(reader.is_done());
            let rest = input[start + consumed..].to_vec();
            return Some((reader.finish(), rest));
        }
        start = end;
    }
    None
}

fn whole(input: &[u8]) -> Outcome {
    read(input, &[], 1 << 20, 998)
}

/// Checks that every two-way split and the byte-by-byte feed agree with the whole feed.
fn assert_chunking_invariant(input: &[u8], max_size: u64, max_line: usize) {
    let expected = read(input, &[], max_size, max_line);
    for cut in 0..=input.len() {
        assert_eq!(
            read(input, &[cut], max_size, max_line),
            expected,
            "cut at {cut}"
        );
    }
    let every: Vec<usize> = (1..input.len()).collect();
    assert_eq!(
        read(input, &every, max_size, max_line),
        expected,
        "bytewise"
    );
}

#[test]
fn unstuffing_table() {
    let table: &[(&[u8], &[u8])] = &[
        (b".\r\n", b""),
        (b"\r\n.\r\n", b"\r\n"),
        (b"a\r\n.\r\n", b"a\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),
        (b"...\r\n.\r\n", b"..\r\n"),
        (b"..a\r\n.\r\n", b".a\r\n"),
        (b".a\r\n.\r\n", b"a\r\n"),
        (b"a.\r\n.\r\n", b"a.\r\n"),
        (b"a\r\n..\r\n..\r\n.\r\n", b"a\r\n.\r\n.\r\n"),
        (b"x\r\n. \r\n.\r\n", b"x\r\n \r\n"),
        (b"\xff\x00\xfe\r\n.\r\n", b"\xff\x00\xfe\r\n"),
        (b"a\r\n\r\n\r\nb\r\n.\r\n", b"a\r\n\r\n\r\nb\r\n"),
    ];
    for &(input, expected) in table {
        let mut with_tail = input.to_vec();
        with_tail.extend_from_slice(b"QUIT\r\n");
        let got = whole(&with_tail);
        assert_eq!(
            got,
            Some((Ok(expected.to_vec()), b"QUIT\r\n".to_vec())),
            "{input:?}"
        );
        assert_chunking_invariant(&with_tail, 1 << 20, 998);
    }
}

#[test]
fn no_terminator_means_need_more() {
    for input in [
        &b""[..],
        b".",
        b".\r",
        b"a\r\n.",
        b"a\r\n.\r",
        b"a\n.\n",
        b"a\r.\r",
        b"a\r\n.\n",
        b"\n.\r\n",
    ] {
        assert_eq!(whole(input), None, "{input:?}");
    }
}

#[test]
fn smuggling_sequences_do_not_terminate_and_are_reported() {
    let bad: &[&[u8]] = &[
        b"\n.\n",
        b"\r.\r",
        b"\n.\r\n",
        b"\r\n.\n",
        b"\r\n.\rX",
        b"\r\n.\r\r\n",
        b"a\nb",
        b"a\rb",
        b"\r\r\n",
        b"\n\r\n",
    ];
    for &seq in bad {
        let mut input = b"Subject: x\r\n\r\nbody".to_vec();
        input.extend_from_slice(seq);
        input.extend_from_slice(b"MAIL FROM:<evil@x>\r\nmore\r\n.\r\nNOOP\r\n");
        let got = whole(&input);
        assert_eq!(
            got,
            Some((Err(DataError::BareLineEnding), b"NOOP\r\n".to_vec())),
            "{seq:?}"
        );
        assert_chunking_invariant(&input, 1 << 20, 998);
    }
}

#[test]
fn size_limit_is_exact_and_counted_after_unstuffing() {
    // "aaaa\r\n" is 6 bytes.
    let input = b"aaaa\r\n.\r\n";
    assert_eq!(
        read(input, &[], 6, 998).map(|r| r.0),
        Some(Ok(b"aaaa\r\n".to_vec()))
    );
    assert_eq!(
        read(input, &[], 5, 998).map(|r| r.0),
        Some(Err(DataError::TooBig))
    );
    // "..aaa\r\n" unstuffs to 6 bytes.
    let input = b"..aaa\r\n.\r\nX";
    assert_eq!(
        read(input, &[], 6, 998).map(|r| r.0),
        Some(Ok(b".aaa\r\n".to_vec()))
    );
    // Far over the limit: still consumed up to the terminator, nothing more.
    let mut big = vec![b'x'; 500];
    big.extend_from_slice(b"\r\n");
    let mut input = big.repeat(100);
    input.extend_from_slice(b".\r\nRSET\r\n");
    assert_eq!(
        read(&input, &[], 1000, 998),
        Some((Err(DataError::TooBig), b"RSET\r\n".to_vec()))
    );
    assert_chunking_invariant(&input[..2000], 1000, 998);
}

#[test]
fn line_limit_is_exact() {
    let ok = [vec![b'x'; 10], b"\r\n.\r\n".to_vec()].concat();
    let long = [vec![b'x'; 11], b"\r\n.\r\n".to_vec()].concat();
    assert!(matches!(read(&ok, &[], 1000, 10), Some((Ok(_), _))));
    assert_eq!(
        read(&long, &[], 1000, 10).map(|r| r.0),
        Some(Err(DataError::LineTooLong))
    );
    // A stuffed dot does not count.
    let stuffed = [b".".to_vec(), vec![b'x'; 10], b"\r\n.\r\n".to_vec()].concat();
    assert!(matches!(read(&stuffed, &[], 1000, 10), Some((Ok(_), _))));
    assert_chunking_invariant(&long, 1000, 10);
}

#[test]
fn error_priority_is_bare_then_size_then_line() {
    let long_then_big = [
        vec![b'x'; 50],
        b"\r\n".to_vec(),
        vec![b'y'; 5],
        b"\r\n.\r\n".to_vec(),
    ]
    .concat();
    assert_eq!(
        read(&long_then_big, &[], 55, 10).map(|r| r.0),
        Some(Err(DataError::TooBig))
    );
    let big_then_bare = [vec![b'x'; 50], b"\n\r\n.\r\n".to_vec()].concat();
    assert_eq!(
        read(&big_then_bare, &[], 10, 998).map(|r| r.0),
        Some(Err(DataError::BareLineEnding))
    );
}

#[test]
fn feeding_after_done_consumes_nothing() {
    let mut reader = DataReader::new(100, 100);
    assert_eq!(reader.feed(b"a\r\n.\r\nb"), Feed::Done { consumed: 6 });
    assert_eq!(reader.feed(b"more"), Feed::Done { consumed: 0 });
    assert_eq!(reader.size(), 3);
    assert_eq!(reader.error(), None);
    assert_eq!(reader.finish(), Ok(b"a\r\n".to_vec()));
}
