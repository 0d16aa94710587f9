//! STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN (RFC 4954) in the server session: what is
//! offered when, the plaintext pipelined behind STARTTLS never read as a command (at
//! every split of the input), the SASL exchanges, and what authentication unlocks
//! (MAIL on a `require_auth` listener, relaying).
//!
//! The driver (`server_support::drain_events`) completes each handshake at once and
//! accepts the password `secret`; `<TLS>` in the transcripts marks the handshake.

mod server_support;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use impulse_smtp::server::{Event, Policy, Session, State};
use server_support::{crlf, drain_events, policy, run_chunks, submission, Run, PASSWORD};

fn b64(s: &[u8]) -> String {
    STANDARD.encode(s)
}

/// Runs each group of lines as one read (the first group in plaintext): the output
/// lines after the greeting.
fn session(policy: Policy, groups: &[&[&str]]) -> Vec<String> {
    let chunks: Vec<Vec<u8>> = groups.iter().map(|g| crlf(g)).collect();
    let mut lines = run_chunks(policy, chunks.iter().map(Vec::as_slice)).lines();
    lines.remove(0);
    lines
}

fn plain(user: &str, password: &str) -> String {
    b64(format!("\0{user}\0{password}").as_bytes())
}

#[test]
fn starttls_is_offered_until_tls_and_auth_only_inside() {
    let r = session(
        submission(),
        &[&["EHLO c", "STARTTLS"], &["EHLO c", "STARTTLS"]],
    );
    let first_ehlo: Vec<&String> = r.iter().take_while(|l| !l.starts_with("220")).collect();
    assert!(
        first_ehlo.iter().any(|l| l.as_str() == "250-STARTTLS"),
        "{r:?}"
    );
    assert!(!first_ehlo.iter().any(|l| l.contains("AUTH")), "{r:?}");
    let tls = r.iter().position(|l| l == "<TLS>").expect("handshake");
    assert_eq!(r[tls - 1], "220 2.0.0 Ready to start TLS");
    let after: Vec<&String> = r[tls + 1..].iter().collect();
    assert!(
        after.iter().any(|l| l.as_str() == "250-AUTH PLAIN LOGIN"),
        "{r:?}"
    );
    assert!(
        !after
            .iter()
            .any(|l| l.contains("STARTTLS") && l.starts_with("250")),
        "{r:?}"
    );
    assert_eq!(r.last().unwrap(), "503 5.5.1 TLS already active");

    // Not offered at all without a certificate.
    let r = session(policy(), &[&["EHLO c", "STARTTLS"]]);
    assert!(!r.iter().any(|l| l == "250-STARTTLS"));
    assert_eq!(r.last().unwrap(), "502 5.5.1 Command not implemented");
}

#[test]
fn starttls_refusals_table() {
    let table: &[(&[&str], &str)] = &[
        (&["STARTTLS"], "503 5.5.1 Send EHLO first"),
        (
            &["EHLO c", "MAIL FROM:<a@b>", "STARTTLS"],
            "503 5.5.1 STARTTLS not allowed in a transaction",
        ),
        (
            &["EHLO c", "AUTH PLAIN"],
            "538 5.7.11 Encryption required for requested authentication mechanism",
        ),
    ];
    for (lines, want) in table {
        let r = session(submission(), &[lines]);
        assert_eq!(r.last().unwrap(), want, "{lines:?}: {r:?}");
    }
}

#[test]
fn plaintext_pipelined_behind_starttls_is_never_a_command_at_any_split() {
    // The injection of CVE-2011-0411: commands sent in the clear right behind STARTTLS.
    let input = b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\n";
    let start = input
        .windows(10)
        .position(|w| w == b"STARTTLS\r\n")
        .unwrap()
        + 10;
    for cut in 0..=input.len() {
        let mut s = Session::new(submission());
        s.greeting();
        let mut run = Run::default();
        for part in [&input[..cut], &input[cut..]] {
            s.ingest(part);
            run.output.extend(s.take_output());
            // Complete the handshake only once STARTTLS was answered, and feed nothing
            // the client sent before it completed: all of that was plaintext.
            while let Some(e) = s.poll_event() {
                assert_eq!(e, Event::StartTls);
                run.events.push(e);
            }
        }
        assert_eq!(s.state(), State::TlsPending, "cut {cut}");
        s.tls_started();
        s.ingest(b"MAIL FROM:<a@b>\r\n");
        run.output.extend(s.take_output());
        let text = run.text();
        assert!(
            !text.contains("2.1.0"),
            "cut {cut}: plaintext MAIL was read: {text}"
        );
        assert!(
            text.ends_with("503 5.5.1 Send EHLO or HELO first\r\n"),
            "cut {cut}: {text}"
        );
        assert_eq!(run.events, vec![Event::StartTls], "cut {cut}");
        // Nothing after STARTTLS was answered in plaintext either.
        let before_tls = text.split("220 2.0.0").next().unwrap();
        assert!(!before_tls.contains("503"), "cut {cut}: {text}");
        assert!(cut < start || text.contains("220 2.0.0 Ready to start TLS"));
    }
}

#[test]
fn auth_plain_and_login_exchanges() {
    let ok = plain("alice", PASSWORD);
    let bad = plain("alice", "wrong");
    let table: Vec<(Vec<String>, &str)> = vec![
        (
            vec![format!("AUTH PLAIN {ok}")],
            "235 2.7.0 Authentication successful",
        ),
        (
            vec![format!("AUTH PLAIN {bad}")],
            "535 5.7.8 Authentication credentials invalid",
        ),
        (
            vec!["AUTH PLAIN".into(), ok.clone()],
            "235 2.7.0 Authentication successful",
        ),
        (
            vec!["AUTH PLAIN".into(), "*".into()],
            "501 5.0.0 Authentication cancelled",
        ),
        (
            vec!["AUTH PLAIN".into(), "!!!".into()],
            "501 5.5.2 Cannot decode response",
        ),
        (
            vec![format!("AUTH PLAIN {}", b64(b"bob\0alice\0secret"))],
            "501 5.5.2 Bad PLAIN response",
        ),
        (vec!["AUTH PLAIN =".into()], "501 5.5.2 Bad PLAIN response"),
        (
            vec!["AUTH LOGIN".into(), b64(b"alice"), b64(PASSWORD.as_bytes())],
            "235 2.7.0 Authentication successful",
        ),
        (
            vec![
                format!("AUTH LOGIN {}", b64(b"alice")),
                b64(PASSWORD.as_bytes()),
            ],
            "235 2.7.0 Authentication successful",
        ),
        (
            vec!["AUTH LOGIN".into(), b64(b"alice"), b64(b"nope")],
            "535 5.7.8 Authentication credentials invalid",
        ),
        (
            vec!["AUTH CRAM-MD5".into()],
            "504 5.5.4 Unrecognized authentication type",
        ),
        (
            vec![format!("AUTH PLAIN {ok}"), format!("AUTH PLAIN {ok}")],
            "503 5.5.1 Already authenticated",
        ),
        (
            vec!["MAIL FROM:<a@b>".into(), "AUTH PLAIN".into()],
            "503 5.5.1 AUTH not allowed in a transaction",
        ),
    ];
    for (lines, want) in table {
        let mut inner: Vec<&str> = vec!["EHLO c"];
        inner.extend(lines.iter().map(String::as_str));
        let r = session(submission(), &[&["EHLO c", "STARTTLS"], &inner]);
        assert_eq!(r.last().unwrap(), want, "{lines:?}: {r:?}");
    }
    // The challenges.
    let r = session(
        submission(),
        &[
            &["EHLO c", "STARTTLS"],
            &["EHLO c", "AUTH LOGIN", &b64(b"alice")],
        ],
    );
    assert_eq!(r[r.len() - 2], "334 VXNlcm5hbWU6");
    assert_eq!(r[r.len() - 1], "334 UGFzc3dvcmQ6");
    let r = session(
        submission(),
        &[&["EHLO c", "STARTTLS"], &["EHLO c", "AUTH PLAIN"]],
    );
    assert_eq!(r.last().unwrap(), "334 ");
}

#[test]
fn auth_unlocks_mail_and_relaying() {
    let required = Policy {
        require_auth: true,
        ..submission()
    };
    let ok = plain("alice", PASSWORD);
    let tls: &[&str] = &["EHLO c", "STARTTLS"];
    let r = session(required.clone(), &[tls, &["EHLO c", "MAIL FROM:<a@b>"]]);
    assert_eq!(r.last().unwrap(), "530 5.7.0 Authentication required");
    let r = session(required.clone(), &[&["EHLO c", "MAIL FROM:<a@b>"]]);
    assert_eq!(r.last().unwrap(), "530 5.7.0 Authentication required");
    // Not allowed to relay without AUTH, allowed with it.
    let r = session(
        submission(),
        &[tls, &["EHLO c", "MAIL FROM:<a@b>", "RCPT TO:<x@y>"]],
    );
    assert_eq!(r.last().unwrap(), "550 5.7.1 Relaying denied");
    let auth = format!("AUTH PLAIN {ok}");
    let r = session(
        required,
        &[
            tls,
            &["EHLO c", &auth, "MAIL FROM:<a@b>", "RCPT TO:<x@y>", "DATA"],
        ],
    );
    assert_eq!(r.last().unwrap(), "354 End data with <CR><LF>.<CR><LF>");
}

#[test]
fn auth_waits_for_the_check_and_keeps_pipelined_input() {
    let mut s = Session::new(submission());
    s.set_implicit_tls();
    s.greeting();
    let _ = s.take_output();
    let input = format!(
        "EHLO c\r\nAUTH PLAIN {}\r\nMAIL FROM:<a@b>\r\n",
        plain("alice", PASSWORD)
    );
    s.ingest(input.as_bytes());
    assert!(s.is_waiting());
    let out = String::from_utf8(s.take_output()).unwrap();
    assert!(!out.contains("2.1.0"), "MAIL answered before AUTH: {out}");
    assert_eq!(
        s.poll_event(),
        Some(Event::Auth {
            user: "alice".into(),
            password: PASSWORD.into()
        })
    );
    s.auth_done(Some("alice".into()));
    let out = String::from_utf8(s.take_output()).unwrap();
    assert_eq!(
        out,
        "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n"
    );
    assert_eq!(s.auth_user(), Some("alice"));
    // And a long SASL line is fine (up to 12 288 octets).
    let mut s = Session::new(submission());
    s.set_implicit_tls();
    let long = plain("alice", &"p".repeat(4000));
    let mut run = Run::default();
    s.ingest(format!("EHLO c\r\nAUTH PLAIN\r\n{long}\r\n").as_bytes());
    drain_events(&mut s, &mut run);
    assert!(
        run.text()
            .ends_with("535 5.7.8 Authentication credentials invalid\r\n"),
        "{}",
        run.text()
    );
}
