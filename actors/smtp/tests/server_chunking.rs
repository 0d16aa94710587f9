//! Chunk-split tests: a full pipelined transcript gives the same replies and events
//! whether it arrives whole, split at any one byte position, byte by byte, at random
//! positions, or with `message_done` arriving late.

mod server_support;

use impulse_smtp::server::{Event, MessageOutcome, Session};
use server_support::{drain_events, policy, run, run_bytewise, run_split, Rng, Run};

/// Two transactions, dot-stuffing, a smuggling attempt, errors, a too-big message, QUIT.
fn transcript() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"EHLO client.test\r\n");
    t.extend_from_slice(b"MAIL FROM:<a@b> SIZE=100\r\nRCPT TO:<x@y>\r\nRCPT TO:<z@y>\r\nDATA\r\n");
    t.extend_from_slice(b"Subject: one\r\n\r\n..stuffed\r\n.solo\r\nend.\r\n.\r\n");
    t.extend_from_slice(b"NOOP\r\nFOO bar\r\nbad\nline\r\nVRFY x\r\n");
    t.extend_from_slice(b"MAIL FROM:<>\r\nRCPT TO:<p@q>\r\nDATA\r\n");
    t.extend_from_slice(
        b"hello\n.\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@w>\r\nDATA\r\nsmuggled\r\n.\r\n",
    );
    t.extend_from_slice(b"RSET\r\nMAIL FROM:<c@d>\r\nRCPT TO:<r@s>\r\nDATA\r\n");
    t.extend_from_slice(b"\r\n.\r\n");
    t.extend_from_slice(b"MAIL FROM:<c@d>\r\nRCPT TO:<r@s>\r\nDATA\r\n");
    for _ in 0..30 {
        t.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    t.extend_from_slice(b".\r\nNOOP\r\nQUIT\r\nNOOP\r\n");
    t
}

fn expected() -> Run {
    let r = run(policy(), &transcript());
    let messages = r.messages();
    assert_eq!(messages.len(), 2, "{}", r.text());
    assert_eq!(messages[0].0, "a@b");
    assert_eq!(messages[0].1, ["x@y", "z@y"]);
    assert_eq!(
        messages[0].2,
        b"Subject: one\r\n\r\n.stuffed\r\nsolo\r\nend.\r\n"
    );
    assert_eq!(
        messages[1],
        ("c@d".into(), vec!["r@s".into()], b"\r\n".to_vec())
    );
    assert_eq!(r.events.last(), Some(&Event::Quit));
    let lines = r.lines();
    assert!(lines.contains(&"550 5.6.0 Bare LF or CR in message data not accepted".to_string()));
    assert!(lines.contains(&"552 5.3.4 Message too big".to_string()));
    assert_eq!(lines.last().map(String::as_str), Some("221 2.0.0 Bye"));
    r
}

#[test]
fn every_single_split_position() {
    let input = transcript();
    let expected = expected();
    for cut in 0..=input.len() {
        assert_eq!(
            run_split(policy(), &input, &[cut]),
            expected,
            "cut at {cut}"
        );
    }
}

#[test]
fn byte_by_byte() {
    assert_eq!(run_bytewise(policy(), &transcript()), expected());
}

#[test]
fn random_splits() {
    let input = transcript();
    let expected = expected();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..500 {
        let count = 1 + (rng.next() % 40) as usize;
        let cuts = rng.cuts(input.len(), count);
        assert_eq!(
            run_split(policy(), &input, &cuts),
            expected,
            "round {round} cuts {cuts:?}"
        );
    }
}

/// Feeds random chunks but answers stored messages only now and then, as a slow spool
/// would; the replies must come out in the same order as with prompt answers.
#[test]
fn late_message_done_keeps_reply_order() {
    let input = transcript();
    let expected = expected();
    let mut rng = Rng(0xdead_beef_0000_0042);
    for round in 0..200 {
        let mut session = Session::new(policy());
        session.greeting();
        let mut got = Run::default();
        let count = 1 + (rng.next() % 20) as usize;
        let cuts = rng.cuts(input.len(), count);
        let mut start = 0;
        for end in cuts.into_iter().chain([input.len()]) {
            session.ingest(&input[start..end]);
            start = end;
            got.output.extend(session.take_output());
            if rng.next().is_multiple_of(3) {
                drain_events(&mut session, &mut got);
            }
        }
        // Answering one message may release the next: drain_events loops until none is left.
        drain_events(&mut session, &mut got);
        assert_eq!(session.buffered(), 0);
        assert_eq!(got, expected, "round {round}");
    }
}

/// Everything arrives while the first message is being stored: nothing after the 354 is
/// answered until message_done, then all the rest is answered in order.
#[test]
fn whole_pipeline_buffered_during_store() {
    let mut session = Session::new(policy());
    session.ingest(
        b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\none\r\n.\r\n\
          MAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n",
    );
    let first = String::from_utf8(session.take_output()).unwrap_or_default();
    assert!(
        first.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{first}"
    );
    assert!(session.is_waiting());
    assert!(session.buffered() > 0);
    assert!(
        matches!(session.poll_event(), Some(Event::Message { ref data, .. }) if data == b"one\r\n")
    );
    assert_eq!(session.poll_event(), None);
    // More input while waiting is only buffered.
    session.ingest(b"NOOP\r\n");
    assert!(session.take_output().is_empty());
    session.message_done(MessageOutcome::Accepted { id: "1".into() });
    assert_eq!(
        session.take_output(),
        b"250 2.0.0 Ok: queued as 1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    assert!(
        matches!(session.poll_event(), Some(Event::Message { ref data, .. }) if data == b"two\r\n")
    );
    session.message_done(MessageOutcome::TempFail("try later".into()));
    assert_eq!(
        session.take_output(),
        b"451 4.3.0 try later\r\n221 2.0.0 Bye\r\n"
    );
    assert_eq!(session.poll_event(), Some(Event::Quit));
    assert_eq!(session.buffered(), 0);
}
