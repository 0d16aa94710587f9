//! The reply parser: a table of server byte streams with the replies (or the error) they
//! give, each also fed split at every offset and byte by byte; the bounds on line length
//! and line count; and property tests (no panic on any input, any chunking of valid
//! replies gives the same replies).

use impulse_smtp::reply::{EnhancedCode, Reply, ReplyError, ReplyParser, MAX_LINE, MAX_LINES};
use proptest::collection::vec;
use proptest::prelude::*;

/// Replies parsed from `input` fed in `pieces`, and the error if one occurred.
fn parse_pieces<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Reply>, Option<ReplyError>) {
    let mut parser = ReplyParser::new();
    let mut out = Vec::new();
    for piece in pieces {
        if let Err(e) = parser.feed(piece, &mut out) {
            return (out, Some(e));
        }
    }
    (out, None)
}

fn r(code: u16, enhanced: Option<(u8, u16, u16)>, text: &str) -> Reply {
    Reply::new(
        code,
        enhanced.map(|(c, s, d)| EnhancedCode::new(c, s, d)),
        text,
    )
}

fn malformed(line: &str) -> Option<ReplyError> {
    Some(ReplyError::Malformed {
        line: line.to_owned(),
    })
}

#[allow(clippy::type_complexity)]
fn table() -> Vec<(&'static [u8], Vec<Reply>, Option<ReplyError>)> {
    vec![
        (b"250 ok\r\n", vec![r(250, None, "ok")], None),
        (b"250-a\r\n250 b\r\n", vec![r(250, None, "a\nb")], None),
        (
            b"250 2.1.0 sender ok\r\n",
            vec![r(250, Some((2, 1, 0)), "sender ok")],
            None,
        ),
        (
            b"550-5.1.1 no such\r\n550-5.1.1 user\r\n550 5.1.1 here\r\n",
            vec![r(550, Some((5, 1, 1)), "no such\nuser\nhere")],
            None,
        ),
        (b"250\r\n", vec![r(250, None, "")], None),
        (b"250 \r\n", vec![r(250, None, "")], None),
        (b"220 bare lf\n", vec![r(220, None, "bare lf")], None),
        (
            b"250-mixed\n250 ends\r\n",
            vec![r(250, None, "mixed\nends")],
            None,
        ),
        (
            b"250 a\r\n354 b\r\n",
            vec![r(250, None, "a"), r(354, None, "b")],
            None,
        ),
        (b"250 partial", vec![], None),
        (b"250-partial\r\n", vec![], None),
        (b"250 keeps\rCR\r\n", vec![r(250, None, "keeps\rCR")], None),
        (b"250 ok\r\r\n", vec![r(250, None, "ok\r")], None),
        (
            b"250 \xff\xfe\r\n",
            vec![r(250, None, "\u{fffd}\u{fffd}")],
            None,
        ),
        (b"25 short\r\n", vec![], malformed("25 short")),
        (b"abc\r\n", vec![], malformed("abc")),
        (b"250x\r\n", vec![], malformed("250x")),
        (b"150 no\r\n", vec![], malformed("150 no")),
        (b"650 no\r\n", vec![], malformed("650 no")),
        (b"\r\n", vec![], malformed("")),
        (
            b"250 first\r\nxyz\r\n250 never\r\n",
            vec![r(250, None, "first")],
            malformed("xyz"),
        ),
        (
            b"250-a\r\n251 b\r\n",
            vec![],
            Some(ReplyError::CodeMismatch {
                first: 250,
                found: 251,
            }),
        ),
    ]
}

#[test]
fn table_whole_split_and_bytewise() {
    for (input, want, err) in table() {
        let name = String::from_utf8_lossy(input);
        assert_eq!(
            parse_pieces([input]),
            (want.clone(), err.clone()),
            "whole {name:?}"
        );
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(
                parse_pieces([a, b]),
                (want.clone(), err.clone()),
                "{name:?} at {at}"
            );
        }
        assert_eq!(
            parse_pieces(input.chunks(1)),
            (want, err),
            "bytewise {name:?}"
        );
    }
}

#[test]
fn line_length_bound() {
    let ok = format!("250 {}\r\n", "x".repeat(MAX_LINE - 4));
    assert_eq!(parse_pieces([ok.as_bytes()]).1, None);
    let long = format!("250 {}\r\n", "x".repeat(MAX_LINE - 3));
    assert_eq!(
        parse_pieces([long.as_bytes()]).1,
        Some(ReplyError::LineTooLong)
    );
    assert_eq!(
        parse_pieces(long.as_bytes().chunks(7)).1,
        Some(ReplyError::LineTooLong)
    );
    // Endless line without LF: refused as soon as the bound is passed, not buffered.
    let endless = vec![b'x'; MAX_LINE + 2];
    assert_eq!(
        parse_pieces([&endless[..]]).1,
        Some(ReplyError::LineTooLong)
    );
}

#[test]
fn line_count_bound() {
    let reply = |lines: usize| {
        let mut s = "250-x\r\n".repeat(lines - 1);
        s.push_str("250 end\r\n");
        s
    };
    let (replies, err) = parse_pieces([reply(MAX_LINES).as_bytes()]);
    assert_eq!((replies.len(), err), (1, None));
    let (replies, err) = parse_pieces([reply(MAX_LINES + 1).as_bytes()]);
    assert_eq!((replies.len(), err), (0, Some(ReplyError::TooManyLines)));
}

#[test]
fn parser_is_poisoned_after_an_error_and_tracks_partial_replies() {
    let mut parser = ReplyParser::new();
    let mut out = Vec::new();
    assert!(!parser.is_mid_reply());
    parser.feed(b"250-a\r\n", &mut out).expect("valid line");
    assert!(parser.is_mid_reply());
    parser.feed(b"250 b\r\n", &mut out).expect("valid line");
    assert!(!parser.is_mid_reply());
    assert!(parser.feed(b"junk\r\n", &mut out).is_err());
    assert!(parser.feed(b"250 fine\r\n", &mut out).is_err());
    assert_eq!(out.len(), 1);
}

#[test]
fn reply_classes() {
    let classes = [
        (220, [true, false, false, false]),
        (354, [false, true, false, false]),
        (451, [false, false, true, false]),
        (554, [false, false, false, true]),
    ];
    for (code, want) in classes {
        let reply = Reply::new(code, None, "");
        let got = [
            reply.is_positive_completion(),
            reply.is_intermediate(),
            reply.is_transient(),
            reply.is_permanent(),
        ];
        assert_eq!(got, want, "{code}");
    }
}

fn valid_reply() -> impl Strategy<Value = (Vec<u8>, Reply)> {
    let code = prop::sample::select(vec![220u16, 250, 354, 421, 451, 550]);
    let line = "[a-zA-Z0-9 .-]{0,20}";
    (code, vec(line, 1..5), any::<bool>()).prop_map(|(code, lines, bare_lf)| {
        let eol = if bare_lf { "\n" } else { "\r\n" };
        let mut wire = String::new();
        for (i, text) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            wire.push_str(&format!("{code}{sep}{text}{eol}"));
        }
        // What the parser must make of it: the same bytes parsed whole, line by line.
        let (mut replies, err) = parse_pieces([wire.as_bytes()]);
        assert_eq!((replies.len(), err), (1, None), "{wire:?}");
        let reply = replies.remove(0);
        (wire.into_bytes(), reply)
    })
}

proptest! {
    #[test]
    fn any_input_any_chunking_no_panic(input in vec(any::<u8>(), 0..512), cut in 1usize..64) {
        let mut parser = ReplyParser::new();
        let mut out = Vec::new();
        for piece in input.chunks(cut) {
            if parser.feed(piece, &mut out).is_err() {
                break;
            }
        }
        for reply in out {
            prop_assert!((200..600).contains(&reply.code));
        }
    }

    #[test]
    fn valid_replies_survive_any_chunking(
        replies in vec(valid_reply(), 1..6),
        cuts in vec(1usize..30, 1..20),
    ) {
        let wire: Vec<u8> = replies.iter().flat_map(|(w, _)| w.clone()).collect();
        let want: Vec<Reply> = replies.into_iter().map(|(_, r)| r).collect();
        let mut pieces = Vec::new();
        let mut rest = &wire[..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (a, b) = rest.split_at((*cut).min(rest.len()));
            pieces.push(a);
            rest = b;
        }
        prop_assert_eq!(parse_pieces(pieces), (want, None));
    }
}
