//! Memory pressure: near `memory.limit`, new transactions get `451 4.3.1` while the one
//! that filled memory still completes (nothing accepted is dropped), and once memory
//! falls mail is taken again.

mod common;

use std::time::Duration;

use common::abuse::{expect, Client};
use common::relay;

#[test]
fn near_the_limit_new_mail_waits_and_nothing_accepted_is_lost() {
    let (_dir, sink, d) = relay(r#"memory: (limit: "3MiB"),"#);
    // A message of 4 MiB in the making fills the budget.
    let mut big = Client::connect(d.smtp);
    common::abuse::open_data(&mut big, "big@example.com");
    let line = format!("{}\r\n", "x".repeat(998));
    assert!(big.send(b"Subject: big\r\n\r\n"));
    assert!(big.send_repeatedly(line.as_bytes(), 4 * 1024 * 1024 / 1000));

    let mut other = Client::connect(d.smtp);
    expect(other.cmd("EHLO client.test"), 250, "EHLO");
    let refused = common::poll(
        Duration::from_secs(20),
        "MAIL to be refused under memory pressure",
        || {
            let r = other.cmd("MAIL FROM:<s@client.test>");
            if r.code() == 250 {
                other.cmd("RSET");
                std::thread::sleep(Duration::from_millis(50));
                return None;
            }
            Some(r)
        },
        || d.stderr(),
    );
    let text = format!("{refused:?}");
    assert!(text.contains("451") && text.contains("4.3.1"), "{text}");

    // The message under way is still accepted and delivered.
    expect(big.cmd("."), 250, "the big message");
    common::wait_for_rcpt(&sink, &d, "big@example.com");
    // Once it is delivered and gone, memory falls and mail is taken again.
    common::poll(
        Duration::from_secs(30),
        "MAIL to be accepted again",
        || {
            let r = other.cmd("MAIL FROM:<s@client.test>");
            (r.code() == 250).then_some(())
        },
        || d.stderr(),
    );
    let rejections: Vec<_> = d
        .log_records()
        .into_iter()
        .filter(|r| r["type"] == "Rejection" && r["response"]["code"] == 451)
        .collect();
    assert!(!rejections.is_empty(), "the refusal is logged");
}
