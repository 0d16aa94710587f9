//! Fuzz BDAT framing: the input becomes a transaction of BDAT chunks (sizes and LAST
//! flags from the input, chunk bytes from the input, sizes sometimes wrong on purpose),
//! fed whole and in input-chosen pieces; both give the same replies and messages, and a
//! completed message is exactly its chunks joined.
#![no_main]

use impulse_smtp::server::{Event, MessageOutcome, Policy, Session};
use libfuzzer_sys::fuzz_target;

fn policy() -> Policy {
    Policy {
        max_message_size: 2048,
        max_line_length: 64,
        relay_allowed: true,
        ..Policy::new("fuzz.test")
    }
}

fn drive(stream: &[u8], pieces: &[u8]) -> (Vec<u8>, Vec<Event>) {
    let mut s = Session::new(policy());
    s.greeting();
    let mut out = s.take_output();
    let mut events = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < stream.len() {
        let size = if pieces.is_empty() {
            stream.len()
        } else {
            1 + pieces[k % pieces.len()] as usize
        };
        let end = (at + size).min(stream.len());
        s.ingest(&stream[at..end]);
        at = end;
        k += 1;
        out.extend(s.take_output());
        while let Some(e) = s.poll_event() {
            if matches!(e, Event::Message { .. }) {
                s.message_done(MessageOutcome::Accepted { id: events.len().to_string() });
            }
            events.push(e);
            out.extend(s.take_output());
        }
        assert!(s.buffered() <= policy().max_line_length + 2 || s.is_waiting());
    }
    (out, events)
}

fuzz_target!(|data: &[u8]| {
    let (plan, rest) = data.split_at(data.len().min(16));
    let mut stream = b"EHLO f\r\nMAIL FROM:<a@f>\r\nRCPT TO:<b@f>\r\n".to_vec();
    let mut expected = Vec::new();
    let mut rest = rest;
    let mut clean = true;
    let mut sent_last = false;
    for (i, &p) in plan.iter().enumerate() {
        let n = (p & 0x3f) as usize;
        let take = n.min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let last = p & 0x40 != 0 || i + 1 == plan.len();
        // Bit 7: announce a size one too big, so the chunk swallows what follows.
        let announced = if p & 0x80 != 0 { take + 1 } else { take };
        clean &= p & 0x80 == 0;
        let suffix = if last { " LAST" } else { "" };
        stream.extend_from_slice(format!("BDAT {announced}{suffix}\r\n").as_bytes());
        stream.extend_from_slice(chunk);
        expected.extend_from_slice(chunk);
        if last {
            sent_last = true;
            break;
        }
    }
    let whole = drive(&stream, &[]);
    let pieces = drive(&stream, plan);
    assert_eq!(whole, pieces);
    if sent_last && clean && impulse_smtp::data::check_lines(&expected, 998).is_ok() && expected.len() <= 2048 {
        let got: Vec<&Vec<u8>> = whole
            .1
            .iter()
            .filter_map(|e| match e {
                Event::Message { data, .. } => Some(data),
                _ => None,
            })
            .collect();
        assert_eq!(got, vec![&expected]);
    }
});
