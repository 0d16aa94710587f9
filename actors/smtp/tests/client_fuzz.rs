//! Property tests for the client session: arbitrary and semi-structured server input,
//! interleaved with the driver's calls, never panics, never writes a bare CR or LF, and
//! never loses a message: every accepted `OutboundTx` ends in exactly one `Done` with one
//! result per recipient, in envelope order, once the session is closed or aborted.

use std::collections::HashMap;

use bytes::Bytes;
use impulse_smtp::client::{ClientEvent, ClientSession, ClientState, OutboundTx};
use impulse_smtp::Envelope;
use proptest::collection::vec;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Feed(Vec<u8>),
    Send(usize, Vec<u8>),
    Quit,
    Abort,
}

/// One plausible reply (single- or multi-line, CRLF or bare LF) or a fragment of one.
fn reply_bytes() -> impl Strategy<Value = Vec<u8>> {
    let code = prop::sample::select(vec![
        220u16, 221, 250, 251, 354, 421, 450, 451, 452, 500, 502, 503, 550, 552, 554,
    ]);
    let text = prop::sample::select(vec![
        "ok",
        "PIPELINING",
        "SIZE 20",
        "SIZE",
        "8BITMIME",
        "2.0.0 fine",
        "5.1.1 no",
        "",
    ]);
    (code, vec(text, 1..4), any::<bool>(), any::<bool>()).prop_map(|(code, lines, lf, cut)| {
        let eol = if lf { "\n" } else { "\r\n" };
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.push_str(&format!("{code}{sep}{line}{eol}"));
        }
        let mut bytes = out.into_bytes();
        if cut {
            bytes.truncate(bytes.len() / 2);
        }
        bytes
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => vec(any::<u8>(), 0..48).prop_map(Op::Feed),
        6 => vec(reply_bytes(), 1..6).prop_map(|r| Op::Feed(r.concat())),
        3 => (0usize..4, vec(any::<u8>(), 0..40)).prop_map(|(n, b)| Op::Send(n, b)),
        1 => Just(Op::Quit),
        1 => Just(Op::Abort),
    ]
}

/// Every LF is preceded by CR and every CR followed by LF.
fn clean_line_ends(out: &[u8]) -> bool {
    out.iter().enumerate().all(|(i, &b)| match b {
        b'\n' => i > 0 && out[i - 1] == b'\r',
        b'\r' => out.get(i + 1) == Some(&b'\n'),
        _ => true,
    })
}

struct Checker {
    /// Accepted messages by id: their recipients.
    sent: HashMap<u64, Vec<String>>,
    done: HashMap<u64, usize>,
    ended: bool,
}

impl Checker {
    fn drain(&mut self, s: &mut ClientSession) -> Result<(), TestCaseError> {
        while let Some(event) = s.poll_event() {
            prop_assert!(!self.ended, "event {event:?} after Failed/Closed");
            match event {
                ClientEvent::Done { id, outcome } => {
                    let want = self.sent.get(&id);
                    prop_assert!(want.is_some(), "Done for unknown id {id}");
                    let got: Vec<&String> = outcome.recipients.iter().map(|(r, _)| r).collect();
                    let want: Vec<&String> = want.into_iter().flatten().collect();
                    prop_assert_eq!(got, want);
                    *self.done.entry(id).or_default() += 1;
                }
                ClientEvent::Failed { .. } | ClientEvent::Closed => {
                    self.ended = true;
                    prop_assert_eq!(s.state(), ClientState::Closed);
                }
                ClientEvent::Ready => {}
                // Sessions here have TLS disabled.
                ClientEvent::StartTls => prop_assert!(false, "StartTls with TLS disabled"),
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn server_input_never_breaks_the_session(ops in vec(op(), 0..40)) {
        let mut s = ClientSession::new("client.example".to_owned());
        let mut check = Checker { sent: HashMap::new(), done: HashMap::new(), ended: false };
        let mut quit_called = false;
        let mut next_id = 0u64;
        let mut wire = Vec::new();
        for op in ops {
            match op {
                Op::Feed(bytes) => s.ingest(&bytes),
                Op::Send(n, body) => {
                    next_id += 1;
                    let recipients: Vec<String> = (0..n).map(|i| format!("r{i}@x")).collect();
                    let tx = OutboundTx {
                        id: next_id,
                        envelope: Envelope {
                            sender: "s@x".to_owned(),
                            recipients: recipients.clone(),
                            ..Envelope::default()
                        },
                        body: Bytes::from(body),
                    };
                    let idle = s.state() == ClientState::Idle && !quit_called;
                    let result = s.send_message(tx);
                    prop_assert_eq!(result.is_ok(), idle, "send_message vs state");
                    if result.is_ok() {
                        check.sent.insert(next_id, recipients);
                    }
                }
                Op::Quit => {
                    quit_called = true;
                    s.quit();
                }
                Op::Abort => s.abort("test abort"),
            }
            wire.extend_from_slice(&s.take_output());
            check.drain(&mut s)?;
        }
        s.abort("end of test");
        check.drain(&mut s)?;
        prop_assert!(clean_line_ends(&wire), "bare CR or LF written");
        for id in check.sent.keys() {
            prop_assert_eq!(check.done.get(id).copied(), Some(1), "message {} not reported once", id);
        }
    }
}

/// A fake server that answers every command the client wrote with a reply picked from
/// `picks`, so every path through the session is reached, in order, at random.
struct RandomServer {
    picks: Vec<u8>,
    next: usize,
    in_data: bool,
    pending: Vec<u8>,
}

impl RandomServer {
    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        let p = self
            .picks
            .get(self.next % self.picks.len().max(1))
            .copied()
            .unwrap_or(0);
        self.next += 1;
        choices[usize::from(p) % choices.len()]
    }

    /// Reads what the client wrote; returns the replies owed.
    fn answer(&mut self, client: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(client);
        let mut out = Vec::new();
        while let Some(pos) = self.pending.windows(2).position(|w| w == b"\r\n") {
            let line: Vec<u8> = self.pending.drain(..pos + 2).collect();
            let line = &line[..pos];
            if self.in_data {
                if line == b"." {
                    self.in_data = false;
                    let r = self.pick(&[
                        "250 ok",
                        "250 2.0.0 ok",
                        "550 5.7.1 no",
                        "451 later",
                        "421 bye",
                        "354 what",
                    ]);
                    out.extend_from_slice(format!("{r}\r\n").as_bytes());
                }
                continue;
            }
            let verb: String = line
                .iter()
                .take(4)
                .map(|b| b.to_ascii_uppercase() as char)
                .collect();
            let r = match verb.as_str() {
                "EHLO" => self.pick(&[
                    "250-mx\r\n250-PIPELINING\r\n250 SIZE 30",
                    "250-mx\r\n250 8BITMIME",
                    "250 mx",
                    "502 no",
                    "421 bye",
                    "450 busy",
                ]),
                "HELO" => self.pick(&["250 mx", "550 no"]),
                "MAIL" => self.pick(&["250 ok", "250 ok", "451 later", "550 no", "421 bye"]),
                "RCPT" => self.pick(&["250 ok", "250 ok", "550 no", "450 later", "421 bye"]),
                "DATA" => self.pick(&[
                    "354 go",
                    "354 go",
                    "554 no",
                    "451 later",
                    "421 bye",
                    "250 odd",
                ]),
                "RSET" => self.pick(&["250 ok", "250 ok", "500 no"]),
                "QUIT" => "221 bye",
                _ => "500 unknown",
            };
            if r.starts_with("354") {
                self.in_data = true;
            }
            out.extend_from_slice(format!("{r}\r\n").as_bytes());
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_server_answers_never_lose_or_stall(
        picks in vec(any::<u8>(), 1..64),
        greeting in prop::sample::select(vec!["220 hi", "220 hi", "220 hi", "554 no", "421 no"]),
        bodies in vec(vec(prop::sample::select(vec![b'a', b'.', b'\r', b'\n']), 0..40), 1..4),
        chunk in 1usize..16,
    ) {
        let mut s = ClientSession::new("client.example".to_owned());
        let mut server = RandomServer { picks, next: 0, in_data: false, pending: Vec::new() };
        let mut check = Checker { sent: HashMap::new(), done: HashMap::new(), ended: false };
        let mut wire = Vec::new();
        let mut to_client = format!("{greeting}\r\n").into_bytes();
        let mut queue = bodies.into_iter().enumerate();
        for _round in 0..200 {
            for piece in to_client.chunks(chunk) {
                s.ingest(piece);
            }
            check.drain(&mut s)?;
            if s.state() == ClientState::Idle {
                match queue.next() {
                    Some((i, body)) => {
                        let id = i as u64 + 1;
                        let recipients = vec![format!("a{i}@x"), format!("b{i}@x")];
                        let tx = OutboundTx {
                            id,
                            envelope: Envelope {
                                sender: "s@x".to_owned(),
                                recipients: recipients.clone(),
                                ..Envelope::default()
                            },
                            body: Bytes::from(body),
                        };
                        prop_assert!(s.send_message(tx).is_ok());
                        check.sent.insert(id, recipients);
                    }
                    None => s.quit(),
                }
            }
            let out = s.take_output();
            wire.extend_from_slice(&out);
            to_client = server.answer(&out);
            if to_client.is_empty() && s.state() != ClientState::Idle {
                // Nothing owed either way: the session must be finished, not stuck.
                prop_assert_eq!(s.state(), ClientState::Closed, "stalled");
                break;
            }
        }
        s.abort("end of test");
        check.drain(&mut s)?;
        prop_assert!(clean_line_ends(&wire), "bare CR or LF written");
        for id in check.sent.keys() {
            prop_assert_eq!(check.done.get(id).copied(), Some(1), "message {} not reported once", id);
        }
    }
}
