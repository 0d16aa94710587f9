//! SMTP smuggling: a bare LF or bare CR next to a dot must never end the message. Each
//! case hides a second transaction behind a fake terminator; the session must see exactly
//! one message, refuse it with `550 5.6.0` at the real terminator, and go on reading the
//! commands after it — for every way the input can be chunked.

mod server_support;

use server_support::{policy, run, run_bytewise, run_split, Run};

const FAKE_TERMINATORS: &[&[u8]] = &[
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\r\n.\rX\r\n",
    b"\n..\n",
];

fn transcript(fake: &[u8]) -> Vec<u8> {
    let mut t = b"EHLO attacker.test\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@y>\r\nDATA\r\n".to_vec();
    t.extend_from_slice(b"Subject: legit\r\n\r\nhello");
    t.extend_from_slice(fake);
    t.extend_from_slice(b"MAIL FROM:<admin@bank.example>\r\nRCPT TO:<victim@y>\r\nDATA\r\n");
    t.extend_from_slice(b"From: admin@bank.example\r\n\r\nsmuggled\r\n");
    t.extend_from_slice(b".\r\n");
    // What follows the true terminator is read as commands again.
    t.extend_from_slice(b"MAIL FROM:<c@d>\r\nRCPT TO:<r@s>\r\nDATA\r\nclean\r\n.\r\nQUIT\r\n");
    t
}

fn check(fake: &[u8], r: &Run) {
    let lines = r.lines();
    let tail: Vec<&str> = lines[lines.len() - 6..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            "550 5.6.0 Bare LF or CR in message data not accepted",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "354 End data with <CR><LF>.<CR><LF>",
            "250 2.0.0 Ok: queued as Q1",
            "221 2.0.0 Bye",
        ],
        "{fake:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("354")).count(),
        2,
        "{fake:?}"
    );
    let messages = r.messages();
    assert_eq!(
        messages,
        vec![("c@d".into(), vec!["r@s".into()], b"clean\r\n".to_vec())],
        "{fake:?}"
    );
}

#[test]
fn fake_terminators_are_refused_whole() {
    for &fake in FAKE_TERMINATORS {
        check(fake, &run(policy(), &transcript(fake)));
    }
}

#[test]
fn fake_terminators_are_refused_for_every_split() {
    for &fake in FAKE_TERMINATORS {
        let input = transcript(fake);
        let expected = run(policy(), &input);
        for cut in 0..=input.len() {
            assert_eq!(
                run_split(policy(), &input, &[cut]),
                expected,
                "{fake:?} cut at {cut}"
            );
        }
        assert_eq!(
            run_bytewise(policy(), &input),
            expected,
            "{fake:?} bytewise"
        );
    }
}

#[test]
fn bare_line_endings_in_commands_do_not_split_commands() {
    // A bare LF inside a command line must not let a second command through.
    let input = b"EHLO c\r\nNOOP\nMAIL FROM:<evil@x>\r\nRCPT TO:<x@y>\r\n";
    let lines = run(policy(), input).lines();
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "500 5.5.2 Bare LF in command not allowed",
            "503 5.5.1 Need MAIL command"
        ]
    );
    let input = b"EHLO c\r\nNOOP\rMAIL FROM:<evil@x>\r\nRCPT TO:<x@y>\r\n";
    let lines = run(policy(), input).lines();
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "500 5.5.2 Bare CR in command not allowed",
            "503 5.5.1 Need MAIL command"
        ]
    );
}
