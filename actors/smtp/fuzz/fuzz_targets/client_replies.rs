//! Fuzz the client session with arbitrary server bytes: it never panics, never writes a
//! bare CR or LF, and every message it accepted ends in exactly one `Done` with one
//! result per recipient once the session is closed or aborted.
#![no_main]

use std::collections::HashMap;

use bytes::Bytes;
use impulse_smtp::client::{ClientEvent, ClientSession, OutboundTx};
use impulse_smtp::Envelope;
use libfuzzer_sys::fuzz_target;

fn clean(out: &[u8]) -> bool {
    out.iter().enumerate().all(|(i, &b)| match b {
        b'\n' => i > 0 && out[i - 1] == b'\r',
        b'\r' => out.get(i + 1) == Some(&b'\n'),
        _ => true,
    })
}

fuzz_target!(|data: &[u8]| {
    let mut s = ClientSession::new("fuzz.client".to_owned());
    let mut sent: HashMap<u64, usize> = HashMap::new();
    let mut done: HashMap<u64, usize> = HashMap::new();
    let mut wire = Vec::new();
    let mut next = 0u64;
    // Control bytes: 0x00-0x0f send a message with that many recipients, then the
    // input runs until the next control byte.
    for part in data.split(|&b| b < 0x04) {
        if !part.is_empty() && part[0] % 7 == 0 {
            next += 1;
            let n = (part[0] as usize % 3) + 1;
            let tx = OutboundTx {
                id: next,
                envelope: Envelope {
                    sender: "s@fuzz".into(),
                    recipients: (0..n).map(|i| format!("r{i}@fuzz")).collect(),
                    ..Default::default()
                },
                body: Bytes::copy_from_slice(part),
            };
            if s.send_message(tx).is_ok() {
                sent.insert(next, n);
            }
        }
        s.ingest(part);
        wire.extend(s.take_output());
        while let Some(e) = s.poll_event() {
            if let ClientEvent::Done { id, outcome } = e {
                assert_eq!(outcome.recipients.len(), sent[&id]);
                *done.entry(id).or_default() += 1;
            }
        }
    }
    s.abort("end of input");
    while let Some(e) = s.poll_event() {
        if let ClientEvent::Done { id, outcome } = e {
            assert_eq!(outcome.recipients.len(), sent[&id]);
            *done.entry(id).or_default() += 1;
        }
    }
    wire.extend(s.take_output());
    assert!(clean(&wire), "bare CR or LF written");
    for (id, _) in sent {
        assert_eq!(done.get(&id), Some(&1), "message {id} ended {:?} times", done.get(&id));
    }
});
