//! The impulsed configuration a relay run uses: one listener on a free loopback port,
//! a data directory inside the run's temporary directory, and every domain routed to the
//! sink — statically, or by MX lookup through a loopback DNS server.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How mail reaches the sink.
#[derive(Debug, Clone, Copy)]
pub enum Route {
    /// `routes: { "*": sink }`.
    Static(SocketAddr),
    /// No route: MX lookup asking `dns`, delivery on `port`.
    Mx { dns: SocketAddr, port: u16 },
}

/// The RON text for a run whose data lives in `data_dir` and whose mail goes by
/// `route`, with `pools.arbiters` set when `arbiters` is given and the listener offering
/// STARTTLS with `tls` (certificate and key files) when given.
pub fn render(
    data_dir: &Path,
    route: Route,
    arbiters: Option<usize>,
    tls: Option<(&Path, &Path)>,
) -> String {
    let pools = arbiters
        .map(|n| format!("    pools: (arbiters: {n}),\n"))
        .unwrap_or_default();
    let route = match route {
        Route::Static(sink) => format!("    routes: {{ \"*\": \"{sink}\" }},\n"),
        Route::Mx { dns, port } => {
            format!("    dns: (servers: [\"{dns}\"]),\n    delivery: (port: {port}),\n")
        }
    };
    let tls = tls
        .map(|(cert, key)| {
            format!(
                ", tls_cert: {}, tls_key: {}",
                ron_string(&cert.to_string_lossy()),
                ron_string(&key.to_string_lossy())
            )
        })
        .unwrap_or_default();
    format!(
        "(\n    data_dir: {},\n    listeners: [(address: \"127.0.0.1:0\"{tls})],\n{route}{pools})\n",
        ron_string(&data_dir.to_string_lossy())
    )
}

/// Write `impulsed.ron` into `dir` (data directory `dir/data`); returns its path.
pub fn write(
    dir: &Path,
    route: Route,
    arbiters: Option<usize>,
    tls: Option<(&Path, &Path)>,
) -> io::Result<PathBuf> {
    let path = dir.join("impulsed.ron");
    std::fs::write(&path, render(&dir.join("data"), route, arbiters, tls))?;
    Ok(path)
}

/// `s` as a quoted RON string.
fn ron_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_three_keys() {
        let text = render(
            Path::new("/tmp/run/data"),
            Route::Static("127.0.0.1:40001".parse().unwrap()),
            None,
            None,
        );
        assert_eq!(
            text,
            "(\n    data_dir: \"/tmp/run/data\",\n    listeners: [(address: \"127.0.0.1:0\")],\n    routes: { \"*\": \"127.0.0.1:40001\" },\n)\n"
        );
        let v6 = render(
            Path::new("d"),
            Route::Static("[::1]:25".parse().unwrap()),
            Some(2),
            Some((Path::new("/c.pem"), Path::new("/k.pem"))),
        );
        assert!(
            v6.contains(
                r#"listeners: [(address: "127.0.0.1:0", tls_cert: "/c.pem", tls_key: "/k.pem")],"#
            ),
            "{v6}"
        );
        assert!(v6.contains("\"*\": \"[::1]:25\""));
        assert!(v6.contains("    pools: (arbiters: 2),\n)"), "{v6}");
        let mx = Route::Mx {
            dns: "127.0.0.1:5353".parse().unwrap(),
            port: 2526,
        };
        let mx = render(Path::new("d"), mx, None, None);
        assert!(!mx.contains("routes"), "{mx}");
        assert!(mx.contains("dns: (servers: [\"127.0.0.1:5353\"]),"), "{mx}");
        assert!(mx.contains("delivery: (port: 2526),"), "{mx}");
    }

    #[test]
    fn quotes_awkward_paths() {
        assert_eq!(ron_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn writes_into_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            Route::Static("127.0.0.1:9".parse().unwrap()),
            None,
            None,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("{:?}", dir.path().join("data").to_string_lossy())));
    }
}
