//! `impulsectl hash-password`: a password from stdin (one line; the line end is not part
//! of it) to an argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`, the crate's
//! default parameters and a random salt), for `auth.users`. No daemon is needed.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use argon2::password_hash::PasswordHasher;
use argon2::Argon2;

pub fn run() -> ExitCode {
    if std::io::stdin().is_terminal() {
        eprintln!("password (one line, then Enter):");
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("impulsectl: cannot read the password: {e}");
        return ExitCode::from(1);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("impulsectl: an empty password is not hashed");
        return ExitCode::from(1);
    }
    match Argon2::default().hash_password(password.as_bytes()) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("impulsectl: cannot hash the password: {e}");
            ExitCode::from(1)
        }
    }
}
