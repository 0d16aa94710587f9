//! CHUNKING / BDAT (RFC 3030) in the server session: chunks assembled into one message,
//! BDAT LAST, the empty last chunk, refused chunks still consumed (so the stream stays in
//! step), DATA after BDAT refused, the size and line checks, an unreadable chunk size;
//! and every transcript gives the same replies and messages at every split of its input.

mod server_support;

use impulse_smtp::server::Event;
use server_support::{policy, run, run_split, Run};

fn lines_after_greeting(r: &Run) -> Vec<String> {
    let mut l = r.lines();
    l.remove(0);
    l
}

const TX: &str = "EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n";

#[test]
fn chunks_make_one_message() {
    let input = format!("{TX}BDAT 7\r\nHello, BDAT 7 LAST\r\nworld\r\nNOOP\r\n");
    let r = run(policy(), input.as_bytes());
    let l = lines_after_greeting(&r);
    assert!(l.iter().any(|x| x == "250-CHUNKING"), "{l:?}");
    let tail: Vec<&str> = l.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "250 2.0.0 7 octets received",
            "250 2.0.0 Ok: queued as Q1",
            "250 2.0.0 Ok"
        ]
    );
    let m = r.messages();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].2, b"Hello, world\r\n");
    assert_eq!(m[0].1, ["x@y.test"]);
}

#[test]
fn refusals_table() {
    let table: Vec<(String, &str)> = vec![
        // An empty last chunk completes the message.
        (format!("{TX}BDAT 0 LAST\r\n"), "250 2.0.0 Ok: queued as Q1"),
        // Before RCPT: refused, its 4 octets ("RSET") consumed, not executed.
        ("EHLO c\r\nBDAT 4\r\nRSETNOOP\r\n".into(), "250 2.0.0 Ok"),
        (
            "EHLO c\r\nMAIL FROM:<a@b>\r\nBDAT 2\r\nxx".into(),
            "554 5.5.1 No valid recipients",
        ),
        (
            "EHLO c\r\nBDAT 2\r\nxx".into(),
            "503 5.5.1 Need RCPT command",
        ),
        (format!("{TX}BDAT 2\r\nab"), "250 2.0.0 2 octets received"),
        (
            format!("{TX}BDAT 2\r\nabDATA\r\n"),
            "503 5.5.1 DATA not allowed after BDAT",
        ),
        // Over the size limit (1000): refused, all consumed, the transaction ends at LAST.
        (
            format!("{TX}BDAT 1500 LAST\r\n{}NOOP\r\n", "x".repeat(1500)),
            "250 2.0.0 Ok",
        ),
        (
            format!(
                "{TX}BDAT 600\r\n{}BDAT 600 LAST\r\n{}",
                "x".repeat(600),
                "y".repeat(600)
            ),
            "552 5.3.4 Message too big",
        ),
        (
            format!("{TX}BDAT 5 LAST\r\na\nb\r\n"),
            "550 5.6.0 Bare LF or CR in message data not accepted",
        ),
        (
            format!("{TX}BDAT 3 LAST\r\nabcMAIL FROM:<a@b>\r\n"),
            "250 2.1.0 Ok",
        ),
        (
            "EHLO c\r\nBDAT x LAST\r\n".into(),
            "421 4.7.0 Cannot find the end of the BDAT chunk, closing",
        ),
        (
            "EHLO c\r\nBDAT 5 FIRST\r\n".into(),
            "421 4.7.0 Cannot find the end of the BDAT chunk, closing",
        ),
    ];
    for (input, want) in table {
        let r = run(policy(), input.as_bytes());
        let l = lines_after_greeting(&r);
        assert_eq!(l.last().map(String::as_str), Some(want), "{input:?}: {l:?}");
    }
    // The over-size message was refused before its end and nothing was handed out.
    let r = run(
        policy(),
        format!("{TX}BDAT 1500 LAST\r\n{}", "x".repeat(1500)).as_bytes(),
    );
    assert!(r.messages().is_empty());
    assert!(
        r.text().contains("552 5.3.4 Message too big"),
        "{}",
        r.text()
    );
    let r = run(policy(), b"EHLO c\r\nBDAT x\r\n");
    assert_eq!(r.events.last(), Some(&Event::Close));
}

#[test]
fn every_split_gives_the_same_session() {
    let inputs = [
        format!("{TX}BDAT 7\r\nHello, BDAT 7 LAST\r\nworld\r\nQUIT\r\n"),
        format!("{TX}BDAT 3\r\n\r\n.BDAT 4 LAST\r\n.\r\n\r\nRSET\r\n"),
        "EHLO c\r\nBDAT 4\r\nRSETNOOP\r\n".to_string(),
        format!("{TX}BDAT 12 LAST\r\nBDAT 1 LAST\r\nNOOP\r\n"),
        format!("{TX}BDAT 0\r\nBDAT 0 LAST\r\n{TX}DATA\r\nx\r\n.\r\n"),
    ];
    for input in inputs {
        let b = input.as_bytes();
        let whole = run(policy(), b);
        for cut in 0..=b.len() {
            assert_eq!(
                run_split(policy(), b, &[cut]),
                whole,
                "{input:?} cut at {cut}"
            );
        }
        for (a, c) in [(1, 5), (3, 17), (10, 40)] {
            let cuts: Vec<usize> = (0..b.len()).filter(|i| i % a == 0 || i % c == 0).collect();
            assert_eq!(run_split(policy(), b, &cuts), whole, "{input:?} many cuts");
        }
    }
}
