//! Table tests for `Command::parse`: every verb, path forms, ESMTP parameters, and the
//! mapping of each parse error to its reply code.

use impulse_smtp::command::{Body, Command, MailParams, Param, ParseError, RcptParams};

fn mail(from: &str, size: Option<u64>, body: Option<Body>) -> Command {
    Command::Mail {
        from: from.into(),
        params: MailParams {
            size,
            body,
            smtputf8: false,
            ret: None,
            envid: None,
            requiretls: false,
            extra: Vec::new(),
        },
    }
}

fn rcpt(to: &str) -> Command {
    Command::Rcpt {
        to: to.into(),
        params: RcptParams::default(),
    }
}

#[test]
fn accepted_commands() {
    let table: Vec<(&str, Command)> = vec![
        (
            "EHLO client.example",
            Command::Ehlo("client.example".into()),
        ),
        ("ehlo  [192.0.2.1] ", Command::Ehlo("[192.0.2.1]".into())),
        ("HeLo x", Command::Helo("x".into())),
        ("MAIL FROM:<a@b.example>", mail("a@b.example", None, None)),
        ("mail from:<a@b>", mail("a@b", None, None)),
        ("MAIL FROM: <a@b>", mail("a@b", None, None)),
        ("MAIL  FROM:<a@b>  ", mail("a@b", None, None)),
        ("MAIL FROM:<>", mail("", None, None)),
        ("MAIL FROM:<> SIZE=0", mail("", Some(0), None)),
        ("MAIL FROM:<a@b> SIZE=12345", mail("a@b", Some(12345), None)),
        (
            "MAIL FROM:<a@b> body=8bitmime",
            mail("a@b", None, Some(Body::EightBitMime)),
        ),
        (
            "MAIL FROM:<a@b> BODY=7BIT SIZE=9",
            mail("a@b", Some(9), Some(Body::SevenBit)),
        ),
        ("MAIL FROM:<@r1,@r2:a@b>", mail("a@b", None, None)),
        ("MAIL FROM:<\"a b>c\"@d>", mail("\"a b>c\"@d", None, None)),
        (
            "MAIL FROM:<a@[IPv6:2001:db8::1]>",
            mail("a@[IPv6:2001:db8::1]", None, None),
        ),
        (
            "MAIL FROM:<rené@exämple.de>",
            mail("rené@exämple.de", None, None),
        ),
        ("RCPT TO:<c@d>", rcpt("c@d")),
        ("rcpt to: <c@d>", rcpt("c@d")),
        ("RCPT TO:<Postmaster>", rcpt("Postmaster")),
        ("DATA", Command::Data),
        ("data ", Command::Data),
        ("RSET", Command::Rset),
        ("NOOP", Command::Noop),
        ("NOOP anything at all", Command::Noop),
        ("QUIT", Command::Quit),
        ("VRFY postmaster", Command::Vrfy("postmaster".into())),
        ("EXPN list", Command::Expn),
        ("HELP", Command::Help),
        ("HELP MAIL", Command::Help),
        ("STARTTLS", Command::StartTls),
        (
            "BDAT 100 LAST",
            Command::Bdat {
                size: 100,
                last: true,
            },
        ),
        (
            "bdat 0",
            Command::Bdat {
                size: 0,
                last: false,
            },
        ),
        ("TURN", Command::Turn),
        ("ETRN example.com", Command::Turn),
        (
            "AUTH plain AGFsaWNlAHNlY3JldA==",
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial_response: Some("AGFsaWNlAHNlY3JldA==".into()),
            },
        ),
        (
            "AUTH LOGIN",
            Command::Auth {
                mechanism: "LOGIN".into(),
                initial_response: None,
            },
        ),
    ];
    for (line, expected) in table {
        assert_eq!(Command::parse(line.as_bytes()), Ok(expected), "{line:?}");
    }
}

#[test]
fn extra_parameters_are_returned_for_the_session_to_refuse() {
    let parsed = Command::parse(b"MAIL FROM:<a@b> SMTPUTF8 X-OLD=HDRS X-NEW");
    let Ok(Command::Mail { params, .. }) = parsed else {
        panic!("{parsed:?}");
    };
    assert!(params.smtputf8);
    assert_eq!(
        params.extra,
        vec![
            Param {
                keyword: "X-OLD".into(),
                value: Some("HDRS".into())
            },
            Param {
                keyword: "X-NEW".into(),
                value: None
            }
        ]
    );
}

#[test]
fn refused_commands_and_their_replies() {
    // (line, code, enhanced code)
    let table: &[(&[u8], u16, &str)] = &[
        (b"", 500, "5.5.2"),
        (b" ", 500, "5.5.2"),
        (b"FOO", 500, "5.5.2"),
        (b"MAILX FROM:<a@b>", 500, "5.5.2"),
        (b"MAIL\tFROM:<a@b>", 500, "5.5.2"),
        (b"NOOP\0", 500, "5.5.2"),
        (b"MAIL FROM:<a\0@b>", 500, "5.5.2"),
        (b"\0", 500, "5.5.2"),
        (b"EHLO", 501, "5.5.4"),
        (b"EHLO   ", 501, "5.5.4"),
        (b"HELO a\x01b", 501, "5.5.4"),
        (b"EHLO \xff\xfe", 501, "5.5.4"),
        (b"MAIL", 501, "5.5.4"),
        (b"MAIL TO:<a@b>", 501, "5.5.4"),
        (b"MAIL FROM:a@b", 501, "5.1.7"),
        (b"MAIL FROM:<a@b", 501, "5.1.7"),
        (b"MAIL FROM:<a@b>x", 501, "5.1.7"),
        (b"MAIL FROM:<a b@c>", 501, "5.1.7"),
        (b"MAIL FROM:<ab>", 501, "5.1.7"),
        (b"MAIL FROM:<@b>", 501, "5.1.7"),
        (b"MAIL FROM:<a@>", 501, "5.1.7"),
        (b"MAIL FROM:<a<b@c>", 501, "5.1.7"),
        (b"MAIL FROM:<@r1,@r2>", 501, "5.1.7"),
        (b"MAIL FROM:<\xc3@b>", 501, "5.1.7"),
        (b"MAIL FROM:<a@b> SIZE", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> SIZE=", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> SIZE=-1", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> SIZE=+1", 501, "5.5.4"),
        (
            b"MAIL FROM:<a@b> SIZE=99999999999999999999999",
            501,
            "5.5.4",
        ),
        (b"MAIL FROM:<a@b> SIZE=1 SIZE=2", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> BODY=BINARYMIME", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> BODY=7BIT BODY=7BIT", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> =x", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> -X=1", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> X=a=b", 501, "5.5.4"),
        (b"MAIL FROM:<a@b> X=\xc3\xa9", 501, "5.5.4"),
        (b"RCPT", 501, "5.5.4"),
        (b"RCPT TO:", 501, "5.1.3"),
        (b"RCPT TO:<>", 501, "5.1.3"),
        (b"RCPT TO:<nobody>", 501, "5.1.3"),
        (b"RCPT FROM:<a@b>", 501, "5.5.4"),
        (b"DATA now", 501, "5.5.4"),
        (b"RSET x", 501, "5.5.4"),
        (b"QUIT x", 501, "5.5.4"),
        (b"STARTTLS x", 501, "5.5.4"),
        (b"VRFY", 501, "5.5.4"),
        (b"AUTH", 501, "5.5.4"),
        (b"AUTH PLAIN a b", 501, "5.5.4"),
    ];
    for &(line, code, enhanced) in table {
        let error = match Command::parse(line) {
            Err(error) => error,
            Ok(command) => panic!("{:?} parsed as {command:?}", String::from_utf8_lossy(line)),
        };
        let (got_code, got_enhanced, _) = error.reply();
        assert_eq!(
            (got_code, got_enhanced),
            (code, enhanced),
            "{:?} -> {error:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn long_paths_are_refused() {
    let local = "x".repeat(300);
    let line = format!("MAIL FROM:<{local}@b>");
    assert_eq!(
        Command::parse(line.as_bytes()),
        Err(ParseError::BadSender("Path too long"))
    );
    let local = "x".repeat(250);
    let line = format!("RCPT TO:<{local}@b.c>");
    assert!(Command::parse(line.as_bytes()).is_ok());
}

#[test]
fn addresses_checked_outside_smtp() {
    use impulse_smtp::command::check_address;
    let table: Vec<(&str, bool, Result<&str, ()>)> = vec![
        ("a@example.com", false, Ok("a@example.com")),
        ("\"a b\"@example.com", false, Ok("\"a b\"@example.com")),
        ("", true, Ok("")),
        ("", false, Err(())),
        ("postmaster", false, Ok("postmaster")),
        ("postmaster", true, Err(())),
        ("a b@example.com", false, Err(())),
        ("a@example.com> x", false, Err(())),
        ("a@example.com>", false, Err(())),
        ("a\r\n@example.com", false, Err(())),
        ("noat", false, Err(())),
        ("a@", false, Err(())),
    ];
    for (input, sender, want) in table {
        let got = check_address(input, sender).map_err(|_| ());
        let got = got.as_ref().map(String::as_str).map_err(|_| ());
        assert_eq!(got, want, "{input:?} sender={sender}");
    }
}

#[test]
fn smtputf8_parameter() {
    let utf8 = |line: &str| match Command::parse(line.as_bytes()) {
        Ok(Command::Mail { from, params }) => Ok((from, params.smtputf8)),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e),
    };
    assert_eq!(utf8("MAIL FROM:<a@b>"), Ok(("a@b".into(), false)));
    assert_eq!(utf8("MAIL FROM:<a@b> SMTPUTF8"), Ok(("a@b".into(), true)));
    assert_eq!(
        utf8("MAIL FROM:<jöran@bücher.example> smtputf8 BODY=8BITMIME"),
        Ok(("jöran@bücher.example".into(), true))
    );
    assert!(utf8("MAIL FROM:<a@b> SMTPUTF8=yes").is_err());
    assert!(utf8("MAIL FROM:<a@b> SMTPUTF8 SMTPUTF8").is_err());
}

#[test]
fn dsn_parameters() {
    use impulse_smtp::dsn::{Notify, Ret};
    let Ok(Command::Mail { params, .. }) =
        Command::parse(b"MAIL FROM:<a@b> RET=HDRS ENVID=QQ314159")
    else {
        panic!()
    };
    assert_eq!(
        (params.ret, params.envid.as_deref()),
        (Some(Ret::Hdrs), Some("QQ314159"))
    );
    let Ok(Command::Rcpt { params, .. }) =
        Command::parse(b"RCPT TO:<x@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y")
    else {
        panic!()
    };
    assert_eq!(
        params.notify,
        Some(Notify {
            success: true,
            failure: true,
            ..Default::default()
        })
    );
    assert_eq!(params.orcpt.as_deref(), Some("rfc822;x@y"));
    for bad in [
        "MAIL FROM:<a@b> RET=ALL",
        "MAIL FROM:<a@b> RET=FULL RET=HDRS",
        "MAIL FROM:<a@b> ENVID=a=b",
        "RCPT TO:<x@y> NOTIFY=NEVER,DELAY",
        "RCPT TO:<x@y> NOTIFY=",
        "RCPT TO:<x@y> ORCPT=x@y",
    ] {
        assert!(Command::parse(bad.as_bytes()).is_err(), "{bad}");
    }
}
