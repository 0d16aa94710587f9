//! The fake-server transcripts: one named script per scenario. `client_session.rs` plays
//! them whole; `client_split.rs` plays them with the server bytes split every way.

use impulse_smtp::client::ClientState;

use super::Step::{self, *};
use super::{msg, Msg};

const GREET: Step = S("220 mx.example ESMTP\r\n");
const EHLO: Step = C("EHLO client.example\r\n");
/// A pipelining server with SIZE, 8BITMIME and enhanced codes.
const CAPS_PIPE: Step = S(
    "250-mx.example hello\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n\
                           250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n",
);
/// A server without extensions worth mentioning.
const CAPS_PLAIN: Step = S("250-mx.example hello\r\n250 HELP\r\n");
const READY: Step = E(&["ready"]);
const QUIT_AND_CLOSE: [Step; 5] = [
    Quit,
    C("QUIT\r\n"),
    S("221 2.0.0 bye\r\n"),
    E(&["closed"]),
    State(ClientState::Closed),
];

const M1: Msg = msg(
    1,
    "a@src.example",
    &["b@dst.example"],
    "Subject: one\r\n\r\nhello\r\n",
);
const M2: Msg = msg(
    2,
    "a@src.example",
    &["c@dst.example"],
    "Subject: two\r\n\r\nbye\r\n",
);
const M3: Msg = msg(
    3,
    "",
    &["x@dst.example", "y@dst.example", "z@dst.example"],
    "hi\r\n",
);

/// Two recipients, the first with NOTIFY and ORCPT, under RET and ENVID.
const M_DSN: Msg = Msg {
    dsn: "FULL\tQQ+2B1\nSUCCESS,FAILURE\trfc822;b@orig.example\n\t",
    ..msg(
        5,
        "a@src.example",
        &["b@dst.example", "c@dst.example"],
        "hi\r\n",
    )
};

/// A pipelining server that offers DSN.
const CAPS_DSN: Step = S("250-mx.example hello\r\n250-PIPELINING\r\n250 DSN\r\n");

fn pipelined_open() -> Vec<Step> {
    vec![
        State(ClientState::Greeting),
        GREET,
        EHLO,
        CAPS_PIPE,
        READY,
        State(ClientState::Idle),
    ]
}

fn plain_open() -> Vec<Step> {
    vec![GREET, EHLO, CAPS_PLAIN, READY]
}

fn script(parts: &[&[Step]]) -> Vec<Step> {
    parts.concat()
}

/// Every scenario, by name.
pub fn scripts() -> Vec<(&'static str, Vec<Step>)> {
    let mut all = vec![
        ("single message, pipelined", script(&[&pipelined_open(), &[
            Send(M1),
            State(ClientState::Mail),
            C("MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            S("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n"),
            State(ClientState::Body),
            C("Subject: one\r\n\r\nhello\r\n.\r\n"),
            S("250 2.0.0 queued as X\r\n"),
            E(&["done 1: b@dst.example=D250", "ready"]),
        ], &QUIT_AND_CLOSE])),

        ("DSN parameters go on to a server that offers DSN", script(&[&[GREET, EHLO, CAPS_DSN, READY], &[
            Send(M_DSN),
            C("MAIL FROM:<a@src.example> RET=FULL ENVID=QQ+2B1\r\n\
               RCPT TO:<b@dst.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@orig.example\r\n\
               RCPT TO:<c@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
            C("hi\r\n.\r\n"),
            S("250 queued\r\n"),
            E(&["done 5: (dsn relayed) b@dst.example=D250 c@dst.example=D250", "ready"]),
        ], &QUIT_AND_CLOSE])),

        ("DSN parameters are not sent to a server without DSN", script(&[&pipelined_open(), &[
            Send(M_DSN),
            C("MAIL FROM:<a@src.example> SIZE=4\r\nRCPT TO:<b@dst.example>\r\n\
               RCPT TO:<c@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
            C("hi\r\n.\r\n"),
            S("250 queued\r\n"),
            E(&["done 5: b@dst.example=D250 c@dst.example=D250", "ready"]),
        ], &QUIT_AND_CLOSE])),

        ("two messages, pipelined", script(&[&pipelined_open(), &[
            Send(M1),
            C("MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            C("Subject: one\r\n\r\nhello\r\n.\r\n"),
            S("250 queued\r\n"),
            E(&["done 1: b@dst.example=D250", "ready"]),
            Send(M2),
            C("MAIL FROM:<a@src.example> SIZE=21\r\nRCPT TO:<c@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            C("Subject: two\r\n\r\nbye\r\n.\r\n"),
            S("250 queued\r\n"),
            E(&["done 2: c@dst.example=D250", "ready"]),
        ], &QUIT_AND_CLOSE])),

        ("two messages, one command at a time", script(&[&plain_open(), &[
            Send(M1),
            C("MAIL FROM:<a@src.example>\r\n"),
            S("250 ok\r\n"),
            State(ClientState::Rcpt),
            C("RCPT TO:<b@dst.example>\r\n"),
            S("250 ok\r\n"),
            C("DATA\r\n"),
            State(ClientState::Data),
            S("354 go\r\n"),
            C("Subject: one\r\n\r\nhello\r\n.\r\n"),
            S("250 queued\r\n"),
            E(&["done 1: b@dst.example=D250", "ready"]),
            Send(M2),
            C("MAIL FROM:<a@src.example>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<c@dst.example>\r\n"),
            S("250 ok\r\n"),
            C("DATA\r\n"),
            S("354 go\r\n"),
            C("Subject: two\r\n\r\nbye\r\n.\r\n"),
            S("250 queued\r\n"),
            E(&["done 2: c@dst.example=D250", "ready"]),
        ], &QUIT_AND_CLOSE])),

        ("recipient partially rejected, then RSET before the next message", script(&[&plain_open(), &[
            Send(M3),
            C("MAIL FROM:<>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<x@dst.example>\r\n"),
            S("550 5.1.1 no such user\r\n"),
            C("RCPT TO:<y@dst.example>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<z@dst.example>\r\n"),
            S("452 4.2.2 mailbox full\r\n"),
            C("DATA\r\n"),
            S("354 go\r\n"),
            C("hi\r\n.\r\n"),
            S("250 2.0.0 ok\r\n"),
            E(&["done 3: x@dst.example=P550 y@dst.example=D250 z@dst.example=T452", "ready"]),
            Send(M1),
            C("RSET\r\n"),
            State(ClientState::Rset),
            S("250 ok\r\n"),
            C("MAIL FROM:<a@src.example>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@dst.example>\r\n"),
            S("250 ok\r\n"),
            C("DATA\r\n"),
            S("354 go\r\n"),
            C("Subject: one\r\n\r\nhello\r\n.\r\n"),
            S("250 ok\r\n"),
            E(&["done 1: b@dst.example=D250", "ready"]),
        ]])),

        ("all recipients rejected, pipelined DATA gets 554", script(&[&pipelined_open(), &[
            Send(M3),
            C("MAIL FROM:<> SIZE=4\r\nRCPT TO:<x@dst.example>\r\nRCPT TO:<y@dst.example>\r\n\
               RCPT TO:<z@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n550 5.1.1 no\r\n450 4.2.1 later\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n"),
            E(&["done 3: x@dst.example=P550 y@dst.example=T450 z@dst.example=P550", "ready"]),
            Send(M1),
            C("RSET\r\nMAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            S("250 flushed\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
            C("Subject: one\r\n\r\nhello\r\n.\r\n"),
            S("250 ok\r\n"),
            E(&["done 1: b@dst.example=D250", "ready"]),
        ]])),

        ("all recipients rejected, stray 354 gets only the terminator", script(&[&pipelined_open(), &[
            Send(M1),
            C("MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n550 no\r\n354 go\r\n"),
            C(".\r\n"),
            S("554 no recipients\r\n"),
            E(&["done 1: b@dst.example=P550", "ready"]),
        ], &QUIT_AND_CLOSE])),

        ("all recipients rejected, one command at a time: no DATA", script(&[&plain_open(), &[
            Send(M1),
            C("MAIL FROM:<a@src.example>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@dst.example>\r\n"),
            S("550 no\r\n"),
            E(&["done 1: b@dst.example=P550", "ready"]),
        ], &QUIT_AND_CLOSE])),

        ("MAIL rejected 451, pipelined", script(&[&pipelined_open(), &[
            Send(M3),
            C("MAIL FROM:<> SIZE=4\r\nRCPT TO:<x@dst.example>\r\nRCPT TO:<y@dst.example>\r\n\
               RCPT TO:<z@dst.example>\r\nDATA\r\n"),
            S("451 4.3.0 try later\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"),
            State(ClientState::Rcpt),
            S("503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"),
            E(&["done 3: x@dst.example=T451 y@dst.example=T451 z@dst.example=T451", "ready"]),
        ], &QUIT_AND_CLOSE])),

        ("MAIL rejected 553, one command at a time", script(&[&plain_open(), &[
            Send(M3),
            C("MAIL FROM:<>\r\n"),
            S("553 5.7.1 go away\r\n"),
            E(&["done 3: x@dst.example=P553 y@dst.example=P553 z@dst.example=P553", "ready"]),
            Send(M1),
            C("RSET\r\n"),
            S("250 ok\r\n"),
            C("MAIL FROM:<a@src.example>\r\n"),
            S("451 still no\r\n"),
            E(&["done 1: b@dst.example=T451", "ready"]),
        ]])),

        ("end of data 550", script(&[&pipelined_open(), &[
            Send(M3),
            C("MAIL FROM:<> SIZE=4\r\nRCPT TO:<x@dst.example>\r\nRCPT TO:<y@dst.example>\r\n\
               RCPT TO:<z@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n551 5.1.6 moved\r\n250 ok\r\n354 go\r\n"),
            C("hi\r\n.\r\n"),
            S("550-5.7.1 spam\r\n550 5.7.1 really\r\n"),
            E(&["done 3: x@dst.example=P550 y@dst.example=P551 z@dst.example=P550", "ready"]),
        ]])),

        ("DATA refused 451 after accepted recipients", script(&[&plain_open(), &[
            Send(M1),
            C("MAIL FROM:<a@src.example>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@dst.example>\r\n"),
            S("250 ok\r\n"),
            C("DATA\r\n"),
            S("451 4.3.0 not now\r\n"),
            E(&["done 1: b@dst.example=T451", "ready"]),
            Send(M2),
            C("RSET\r\n"),
            S("250 ok\r\n"),
            C("MAIL FROM:<a@src.example>\r\n"),
        ]])),

        ("421 mid-transaction: Done transient, then Failed", script(&[&pipelined_open(), &[
            Send(M3),
            C("MAIL FROM:<> SIZE=4\r\nRCPT TO:<x@dst.example>\r\nRCPT TO:<y@dst.example>\r\n\
               RCPT TO:<z@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n421 4.4.2 shutting down\r\n250 ignored\r\n"),
            E(&["done 3: x@dst.example=T421 y@dst.example=T421 z@dst.example=T421", "failed 421"]),
            State(ClientState::Closed),
            SendRefused(M1),
            Quit,
        ]])),

        ("421 after a refused recipient keeps the refusal", script(&[&pipelined_open(), &[
            Send(M3),
            C("MAIL FROM:<> SIZE=4\r\nRCPT TO:<x@dst.example>\r\nRCPT TO:<y@dst.example>\r\n\
               RCPT TO:<z@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n550 5.1.1 no such user\r\n250 ok\r\n421 4.3.2 going down\r\n"),
            E(&["done 3: x@dst.example=P550 y@dst.example=T421 z@dst.example=T421", "failed 421"]),
        ]])),

        ("421 at end of data", script(&[&plain_open(), &[
            Send(M1),
            C("MAIL FROM:<a@src.example>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@dst.example>\r\n"),
            S("250 ok\r\n"),
            C("DATA\r\n"),
            S("354 go\r\n"),
            C("Subject: one\r\n\r\nhello\r\n.\r\n"),
            S("421 timeout\r\n"),
            E(&["done 1: b@dst.example=T421", "failed 421"]),
        ]])),

        ("421 while idle", script(&[&pipelined_open(), &[
            S("421 4.4.2 idle timeout\r\n"),
            E(&["failed 421"]),
        ]])),

        ("EHLO 502 falls back to HELO", script(&[&[
            GREET,
            EHLO,
            S("502 5.5.1 what?\r\n"),
            State(ClientState::Helo),
            C("HELO client.example\r\n"),
            S("250 mx.example\r\n"),
            READY,
            Send(M1),
            C("MAIL FROM:<a@src.example>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@dst.example>\r\n"),
            S("250 ok\r\n"),
            C("DATA\r\n"),
            S("354 go\r\n"),
            C("Subject: one\r\n\r\nhello\r\n.\r\n"),
            S("250 ok\r\n"),
            E(&["done 1: b@dst.example=D250", "ready"]),
        ], &QUIT_AND_CLOSE])),

        ("EHLO and HELO both rejected", script(&[&[
            GREET,
            EHLO,
            S("500 no\r\n"),
            C("HELO client.example\r\n"),
            S("550 still no\r\n"),
            E(&["failed 550"]),
            State(ClientState::Closed),
        ]])),

        ("EHLO 450 fails the connection", script(&[&[
            GREET, EHLO, S("450 busy\r\n"), E(&["failed 450"]),
        ]])),

        ("greeting 554", script(&[&[
            S("554-mx.example\r\n554 no service\r\n"),
            E(&["failed 554"]),
            State(ClientState::Closed),
            S("220 too late\r\n"),
        ]])),

        ("dot-stuffed body and bare line ends on the wire", script(&[&pipelined_open(), &[
            Send(msg(9, "a@src.example", &["b@dst.example"], ".hidden\n..two\r\nmid\rlast")),
            C("MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            C("..hidden\r\n...two\r\nmid\r\nlast\r\n.\r\n"),
            S("250 ok\r\n"),
            E(&["done 9: b@dst.example=D250", "ready"]),
        ]])),

        ("8BITMIME announced when the envelope needs it", script(&[&pipelined_open(), &[
            Send(Msg { eight_bit: true, ..msg(4, "a@src.example", &["b@dst.example"], "x") }),
            C("MAIL FROM:<a@src.example> SIZE=1 BODY=8BITMIME\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            C("x\r\n.\r\n"),
            S("250 ok\r\n"),
            E(&["done 4: b@dst.example=D250", "ready"]),
        ]])),

        ("message above the advertised SIZE is refused locally", script(&[&[
            GREET,
            EHLO,
            S("250-mx.example\r\n250 SIZE 10\r\n"),
            READY,
            Send(msg(5, "a@src.example", &["b@dst.example", "c@dst.example"], "0123456789X")),
            E(&["done 5: b@dst.example=P552 c@dst.example=P552", "ready"]),
            State(ClientState::Idle),
        ], &QUIT_AND_CLOSE])),

        ("addresses that cannot go on a command line are refused locally", script(&[&pipelined_open(), &[
            Send(msg(6, "a@src.example", &["evil\r\nRSET@x", "ok@dst.example", ""], "x")),
            C("MAIL FROM:<a@src.example> SIZE=1\r\nRCPT TO:<ok@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            C("x\r\n.\r\n"),
            S("250 ok\r\n"),
            E(&["done 6: evil\r\nRSET@x=P553 ok@dst.example=D250 =P553", "ready"]),
            Send(msg(7, "bad\n@src", &["ok@dst.example"], "x")),
            E(&["done 7: ok@dst.example=P553", "ready"]),
        ]])),

        ("multi-line replies with bare LF", script(&[&[
            S("220-mx.example\n220 ESMTP\n"),
            EHLO,
            S("250-mx.example\n250-PIPELINING\n250 SIZE\n"),
            READY,
            Send(M1),
            C("MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            S("250 ok\n250 ok\n354 go\n"),
            C("Subject: one\r\n\r\nhello\r\n.\r\n"),
            S("250-2.0.0 queued\n250-2.0.0 as\n250 2.0.0 X\n"),
            E(&["done 1: b@dst.example=D250", "ready"]),
        ]])),

        ("quit during a transaction waits for its end", script(&[&pipelined_open(), &[
            Send(M1),
            C("MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            Quit,
            SendRefused(M2),
            S("250 ok\r\n250 ok\r\n354 go\r\n"),
            C("Subject: one\r\n\r\nhello\r\n.\r\n"),
            S("250 ok\r\n"),
            C("QUIT\r\n"),
            E(&["done 1: b@dst.example=D250"]),
            State(ClientState::Quit),
            S("421 whatever\r\n"),
            E(&["closed"]),
        ]])),

        ("protocol error mid-transaction", script(&[&pipelined_open(), &[
            Send(M1),
            C("MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250-ok\r\n251 mismatch\r\n"),
            E(&["done 1: b@dst.example=T451", "failed -"]),
        ]])),

        ("unsolicited reply while idle", script(&[&pipelined_open(), &[
            S("250 surprise\r\n"),
            E(&["failed 250"]),
        ]])),

        ("abort with a message in flight", script(&[&pipelined_open(), &[
            Send(M1),
            C("MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
            S("250 ok\r\n250 o"),
            Abort("connection reset"),
            E(&["done 1: b@dst.example=T451", "failed -"]),
            Abort("again"),
            S("k\r\n354 go\r\n"),
        ]])),

        ("send refused before the session is ready", script(&[&[
            SendRefused(M1),
            GREET,
            SendRefused(M1),
            EHLO,
            CAPS_PIPE,
            READY,
            Send(M1),
            SendRefused(M2),
            C("MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\nDATA\r\n"),
        ]])),
    ];
    all.extend(super::chunking::scripts());
    all
}
