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

/// `pools` settings a run overrides (impulsed's own defaults otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct Pools {
    /// `pools.arbiters`.
    pub arbiters: Option<usize>,
    /// `pools.blocking` (sync-arbiter threads).
    pub blocking: Option<usize>,
}

impl Pools {
    /// The `pools: (…),` line, empty when nothing is overridden.
    fn render(self) -> String {
        let fields: Vec<String> = [("arbiters", self.arbiters), ("blocking", self.blocking)]
            .into_iter()
            .filter_map(|(key, n)| n.map(|n| format!("{key}: {n}")))
            .collect();
        if fields.is_empty() {
            String::new()
        } else {
            format!("    pools: ({}),\n", fields.join(", "))
        }
    }
}

/// The RON text for a run whose data lives in `data_dir` and whose mail goes by
/// `route`, with the `pools` overrides and the listener offering STARTTLS with `tls`
/// (certificate and key files) when given.
pub fn render(data_dir: &Path, route: Route, pools: Pools, tls: Option<(&Path, &Path)>) -> String {
    let pools = pools.render();
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
    pools: Pools,
    tls: Option<(&Path, &Path)>,
) -> io::Result<PathBuf> {
    let path = dir.join("impulsed.ron");
    std::fs::write(&path, render(&dir.join("data"), route, pools, tls))?;
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
            Pools::default(),
            None,
        );
        assert_eq!(
            text,
            "(\n    data_dir: \"/tmp/run/data\",\n    listeners: [(address: \"127.0.0.1:0\")],\n    routes: { \"*\": \"127.0.0.1:40001\" },\n)\n"
        );
        let v6 = render(
            Path::new("d"),
            Route::Static("[::1]:25".parse().unwrap()),
            Pools {
                arbiters: Some(2),
                blocking: None,
            },
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
        let mx = render(
            Path::new("d"),
            mx,
            Pools {
                arbiters: None,
                blocking: Some(3),
            },
            None,
        );
        assert!(mx.contains("    pools: (blocking: 3),\n"), "{mx}");
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
            Pools::default(),
            None,
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("{:?}", dir.path().join("data").to_string_lossy())));
    }
}
