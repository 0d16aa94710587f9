//! Transcripts with a server offering CHUNKING (RFC 3030): the body goes as one
//! `BDAT size LAST` in place of DATA, undotted and with every line ended by CRLF, inside
//! the pipelined command group when the server pipelines.

use impulse_smtp::client::ClientState;

use super::Step::{self, *};
use super::{msg, Msg};

const GREET: Step = S("220 mx.example ESMTP\r\n");
const EHLO: Step = C("EHLO client.example\r\n");
const CAPS_CHUNK_PIPE: Step =
    S("250-mx.example hello\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 CHUNKING\r\n");
const CAPS_CHUNK_ONLY: Step = S("250-mx.example hello\r\n250 CHUNKING\r\n");
const READY: Step = E(&["ready"]);

const M1: Msg = msg(
    1,
    "a@src.example",
    &["b@dst.example"],
    "Subject: one\r\n\r\nhello\r\n",
);
/// M1's whole command group to a pipelining server with CHUNKING and SIZE.
const M1_GROUP: Step = C(
    "MAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\n\
                          BDAT 23 LAST\r\nSubject: one\r\n\r\nhello\r\n",
);
/// A line that is a lone dot, bare LFs, no final line end.
const M_DOT: Msg = msg(2, "a@src.example", &["b@dst.example"], "a\n.\nb");
const M3: Msg = msg(
    3,
    "",
    &["x@dst.example", "y@dst.example", "z@dst.example"],
    "hi\r\n",
);

fn open() -> Vec<Step> {
    vec![
        GREET,
        EHLO,
        CAPS_CHUNK_PIPE,
        READY,
        State(ClientState::Idle),
    ]
}

fn script(parts: &[&[Step]]) -> Vec<Step> {
    parts.concat()
}

/// Every CHUNKING scenario, by name.
pub fn scripts() -> Vec<(&'static str, Vec<Step>)> {
    vec![
        ("CHUNKING: the body goes in the pipelined group as BDAT LAST", script(&[&open(), &[
            Send(M1),
            State(ClientState::Mail),
            M1_GROUP,
            S("250 2.1.0 ok\r\n250 2.1.5 ok\r\n"),
            State(ClientState::Body),
            S("250 2.0.0 queued as X\r\n"),
            E(&["done 1: b@dst.example=D250", "ready"]),
            State(ClientState::Idle),
        ]])),

        ("CHUNKING: a dot line is sent as it is, every line end as CRLF", script(&[&open(), &[
            Send(M_DOT),
            C("MAIL FROM:<a@src.example> SIZE=5\r\nRCPT TO:<b@dst.example>\r\n\
               BDAT 9 LAST\r\na\r\n.\r\nb\r\n"),
            S("250 ok\r\n250 ok\r\n250 queued\r\n"),
            E(&["done 2: b@dst.example=D250", "ready"]),
        ]])),

        ("CHUNKING: some recipients refused, the rest delivered", script(&[&open(), &[
            Send(M3),
            C("MAIL FROM:<> SIZE=4\r\nRCPT TO:<x@dst.example>\r\nRCPT TO:<y@dst.example>\r\n\
               RCPT TO:<z@dst.example>\r\nBDAT 4 LAST\r\nhi\r\n"),
            S("250 ok\r\n250 ok\r\n550 5.1.1 no y\r\n250 ok\r\n250 queued\r\n"),
            E(&["done 3: x@dst.example=D250 y@dst.example=P550 z@dst.example=D250", "ready"]),
            // A refused recipient may have left the server's state unclear: RSET first.
            Send(M1),
            C("RSET\r\nMAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\n\
               BDAT 23 LAST\r\nSubject: one\r\n\r\nhello\r\n"),
        ]])),

        ("CHUNKING: every recipient refused, the BDAT refusal means nothing", script(&[&open(), &[
            Send(M3),
            C("MAIL FROM:<> SIZE=4\r\nRCPT TO:<x@dst.example>\r\nRCPT TO:<y@dst.example>\r\n\
               RCPT TO:<z@dst.example>\r\nBDAT 4 LAST\r\nhi\r\n"),
            S("250 ok\r\n550 no\r\n451 later\r\n550 no\r\n554 5.5.1 no valid recipients\r\n"),
            E(&["done 3: x@dst.example=P550 y@dst.example=T451 z@dst.example=P550", "ready"]),
        ]])),

        ("CHUNKING: a refused MAIL decides for everyone", script(&[&open(), &[
            Send(M1),
            M1_GROUP,
            S("451 4.3.0 try later\r\n503 5.5.1 MAIL first\r\n503 5.5.1 MAIL first\r\n"),
            E(&["done 1: b@dst.example=T451", "ready"]),
            Send(M1),
            C("RSET\r\nMAIL FROM:<a@src.example> SIZE=23\r\nRCPT TO:<b@dst.example>\r\n\
               BDAT 23 LAST\r\nSubject: one\r\n\r\nhello\r\n"),
        ]])),

        ("CHUNKING: a 4xx to BDAT defers the accepted recipients", script(&[&open(), &[
            Send(M1),
            M1_GROUP,
            S("250 ok\r\n250 ok\r\n452 4.3.1 insufficient storage\r\n"),
            E(&["done 1: b@dst.example=T452", "ready"]),
        ]])),

        ("CHUNKING without PIPELINING: one command at a time", script(&[&[
            GREET, EHLO, CAPS_CHUNK_ONLY, READY,
        ], &[
            Send(M1),
            C("MAIL FROM:<a@src.example>\r\n"),
            S("250 ok\r\n"),
            C("RCPT TO:<b@dst.example>\r\n"),
            S("250 ok\r\n"),
            C("BDAT 23 LAST\r\nSubject: one\r\n\r\nhello\r\n"),
            State(ClientState::Body),
            S("250 queued\r\n"),
            E(&["done 1: b@dst.example=D250", "ready"]),
        ]])),

        ("CHUNKING: a 3xx to BDAT ends the session", script(&[&open(), &[
            Send(M1),
            M1_GROUP,
            S("250 ok\r\n250 ok\r\n354 what\r\n"),
            E(&["done 1: b@dst.example=T354", "failed 354"]),
        ]])),
    ]
}
