//! `impulsectl hash-password`: reads a password on stdin, prints an argon2id PHC string
//! that verifies for that password (and not another), a fresh salt each time; no daemon.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordVerifier;
use argon2::Argon2;

fn hash(input: &str) -> (Option<i32>, String) {
    let mut child = Command::new(common::impulsectl_bin())
        .arg("hash-password")
        .env("IMPULSE_SOCKET", "/nonexistent/control.sock")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn prints_an_argon2id_hash_that_verifies() {
    let (code, phc) = hash("correct horse\n");
    assert_eq!(code, Some(0), "{phc}");
    assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
    let parsed = PasswordHash::new(&phc).unwrap();
    assert!(Argon2::default()
        .verify_password(b"correct horse", &parsed)
        .is_ok());
    assert!(Argon2::default()
        .verify_password(b"wrong", &parsed)
        .is_err());
    let (_, again) = hash("correct horse\r\n");
    assert_ne!(phc, again, "a fresh salt each time");
    assert!(
        Argon2::default()
            .verify_password(b"correct horse", &PasswordHash::new(&again).unwrap())
            .is_ok(),
        "CRLF is not part of the password"
    );
}

#[test]
fn an_empty_password_is_refused() {
    let (code, out) = hash("\n");
    assert_eq!(code, Some(1));
    assert!(out.is_empty());
}
