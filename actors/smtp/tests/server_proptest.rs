//! Property tests: random bytes and random SMTP-like token soup never panic the session,
//! its input buffer stays bounded outside `WaitingStore`, its output stays bounded and
//! well-formed, and chunking never changes what it says or does.

mod server_support;

use impulse_smtp::server::Session;
use proptest::prelude::*;
use server_support::{drain_events, policy, run, Run};

/// Command-phase fragments, good and bad (QUIT is rare: it ends the session).
const COMMANDS: &[&[u8]] = &[
    b"EHLO c\r\n",
    b"HELO c\r\n",
    b"MAIL FROM:<a@b>\r\n",
    b"MAIL FROM:<> SIZE=5000\r\n",
    b"RCPT TO:<x@y>\r\n",
    b"DATA\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY x\r\n",
    b"FOO\r\n",
    b"\r\n",
    b"\n",
    b"\r",
    b"x",
    b"\0",
    b"\xff",
];

/// Message-body fragments without bare CR or LF.
const CLEAN_BODY: &[&[u8]] = &[
    b"text",
    b"\r\n",
    b"\r\n",
    b".",
    b"..",
    b"\0\xff",
    b"0123456789",
];

/// Message-body fragments, including every smuggling ingredient.
const DIRTY_BODY: &[&[u8]] = &[
    b"text",
    b"\r\n",
    b".",
    b"..",
    b"\n",
    b"\r",
    b"\n.\n",
    b"\r.\r",
    b"\r\n.\n",
    b"\n.\r\n",
    b"\r\n.\r",
    b"\0\xff",
    b"0123456789012345678901234567890123456789",
];

/// Ends of a transaction's body: mostly the real terminator.
const TERMINATORS: &[&[u8]] = &[b"\r\n.\r\n", b"\r\n.\r\n", b"\r\n.\r\n", b"\n.\n", b""];

/// Sequences of commands and whole transactions whose bodies mix text, dots and bare
/// CR/LF, mostly properly terminated, so every state — and message_done — is reached.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    let command = prop::sample::select(COMMANDS).prop_map(<[u8]>::to_vec);
    let clean = prop::collection::vec(prop::sample::select(CLEAN_BODY), 0..40);
    let dirty = prop::collection::vec(prop::sample::select(DIRTY_BODY), 0..40);
    let body = prop_oneof![clean, dirty].prop_map(|b| b.concat());
    let terminator = prop::sample::select(TERMINATORS);
    let transaction = (body, terminator).prop_map(|(body, end)| {
        [
            &b"MAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\n"[..],
            &body,
            end,
        ]
        .concat()
    });
    let segment = prop_oneof![2 => command, 3 => transaction, 1 => Just(b"\r\n.\r\n".to_vec())];
    (
        any::<bool>(),
        prop::collection::vec(segment, 0..12),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(ehlo, segments, quit)| {
            let mut out = if ehlo {
                b"EHLO c\r\n".to_vec()
            } else {
                Vec::new()
            };
            out.extend(segments.concat());
            if quit {
                out.extend_from_slice(b"QUIT\r\n");
            }
            out
        })
}

fn cuts(max_len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=max_len, 0..30).prop_map(|mut cuts| {
        cuts.sort_unstable();
        cuts
    })
}

/// Feeds chunk by chunk, answering stored messages only after every other chunk (a slow
/// spool), and checks the buffer bound after every step.
fn run_checked(input: &[u8], cuts: &[usize]) -> Run {
    let p = policy();
    let bound = p.max_line_length + 2;
    let mut session = Session::new(p);
    session.greeting();
    let mut run = Run::default();
    let mut start = 0;
    for (i, &end) in cuts.iter().chain([&input.len()]).enumerate() {
        let end = end.clamp(start, input.len());
        session.ingest(&input[start..end]);
        start = end;
        run.output.extend(session.take_output());
        if i % 2 == 1 {
            drain_events(&mut session, &mut run);
        }
        assert!(
            session.is_waiting() || session.buffered() <= bound,
            "buffered {}",
            session.buffered()
        );
    }
    drain_events(&mut session, &mut run);
    assert!(!session.is_waiting());
    run
}

fn assert_well_formed(run: &Run, input_len: usize) {
    // Every reply is caused by at least one input byte (plus the greeting), and the
    // longest reply (EHLO) is under 200 bytes.
    assert!(
        run.output.len() <= 200 * (input_len + 1),
        "{} bytes out",
        run.output.len()
    );
    assert!(run.output.ends_with(b"\r\n"));
    for line in run.output.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(line.ends_with(b"\r"), "{line:?}");
        assert!(
            line.len() >= 5 && line[..3].iter().all(u8::is_ascii_digit),
            "{line:?}"
        );
        assert!(matches!(line[3], b' ' | b'-'), "{line:?}");
        assert!(
            !line[..line.len() - 1]
                .iter()
                .any(|&b| b == b'\r' || b < 0x20),
            "{line:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..3000), cuts in cuts(3000)) {
        let chunked = run_checked(&input, &cuts);
        assert_well_formed(&chunked, input.len());
        prop_assert_eq!(chunked, run(policy(), &input));
    }

    #[test]
    fn token_soup_is_chunking_invariant(input in soup(), cuts in cuts(4000)) {
        let chunked = run_checked(&input, &cuts);
        assert_well_formed(&chunked, input.len());
        prop_assert_eq!(chunked, run(policy(), &input));
    }
}
