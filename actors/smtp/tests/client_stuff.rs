//! Dot-stuffing for transmission: stuffing a CRLF-clean body and then unstuffing it the
//! standard way (a small reference receiver below) gives the body back; whatever the body,
//! the output has only CRLF line ends and exactly one terminator, at the end.

use impulse_smtp::stuff::dot_stuff;
use proptest::collection::vec;
use proptest::prelude::*;

/// Reference receiver (RFC 5321 §4.5.2): reads CRLF lines up to the lone "." line,
/// removing one leading dot from the others. Returns the body and the bytes after the
/// terminator, or `None` if there is no terminator.
fn unstuff(wire: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut body = Vec::new();
    let mut rest = wire;
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if line == b"." {
            return Some((body, rest));
        }
        body.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        body.extend_from_slice(b"\r\n");
    }
}

fn stuffed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    dot_stuff(body, &mut out);
    out
}

/// Bodies made of CRLF-terminated lines that may start with dots.
fn crlf_clean_body() -> impl Strategy<Value = Vec<u8>> {
    vec("[.]{0,3}[a-z .]{0,12}", 0..12).prop_map(|lines| {
        lines
            .iter()
            .flat_map(|l| format!("{l}\r\n").into_bytes())
            .collect()
    })
}

#[test]
fn smuggling_shapes_are_neutralised() {
    // Bodies that try to end the message early on the next hop.
    for body in [
        &b"a\r\n.\r\nMAIL FROM:<x>\r\n"[..],
        b"a\n.\nMAIL FROM:<x>\n",
        b"a\r.\rMAIL FROM:<x>\r",
        b"a\n.\r\nMAIL FROM:<x>\r\n",
        b"a\r\n.\nMAIL FROM:<x>\r\n",
    ] {
        let wire = stuffed(body);
        let (_, after) = unstuff(&wire).expect("terminated");
        assert!(after.is_empty(), "early terminator for {body:?}: {wire:?}");
    }
}

proptest! {
    #[test]
    fn stuffing_round_trips_crlf_clean_bodies(body in crlf_clean_body()) {
        let wire = stuffed(&body);
        let (got, after) = unstuff(&wire).expect("terminated");
        prop_assert_eq!(got, body);
        prop_assert!(after.is_empty());
    }

    #[test]
    fn a_missing_final_crlf_is_added(body in crlf_clean_body(), tail in "[a-z.]{1,8}") {
        let mut input = body.clone();
        input.extend_from_slice(tail.as_bytes());
        let (got, _) = unstuff(&stuffed(&input)).expect("terminated");
        let mut want = input;
        want.extend_from_slice(b"\r\n");
        prop_assert_eq!(got, want);
    }

    #[test]
    fn any_body_gives_clean_line_ends_and_one_terminator(
        body in vec(prop::sample::select(vec![b'a', b'.', b'\r', b'\n', 0u8, 0xff]), 0..200),
    ) {
        let wire = stuffed(&body);
        for (i, &b) in wire.iter().enumerate() {
            match b {
                b'\n' => prop_assert!(i > 0 && wire[i - 1] == b'\r'),
                b'\r' => prop_assert_eq!(wire.get(i + 1), Some(&b'\n')),
                _ => {}
            }
        }
        let (_, after) = unstuff(&wire).expect("terminated");
        prop_assert!(after.is_empty());
        prop_assert!(wire.ends_with(b".\r\n"));
    }
}
