//! The impulsed configuration a relay run uses: one listener on a free loopback port,
//! a data directory inside the run's temporary directory, and every domain routed to the
//! sink.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The RON text for a run whose data lives in `data_dir` and whose mail goes to `sink`,
/// with `pools.arbiters` set when `arbiters` is given.
pub fn render(data_dir: &Path, sink: SocketAddr, arbiters: Option<usize>) -> String {
    let pools = arbiters
        .map(|n| format!("    pools: (arbiters: {n}),\n"))
        .unwrap_or_default();
    format!(
        "(\n    data_dir: {},\n    listeners: [(address: \"127.0.0.1:0\")],\n    routes: {{ \"*\": \"{sink}\" }},\n{pools})\n",
        ron_string(&data_dir.to_string_lossy())
    )
}

/// Write `impulsed.ron` into `dir` (data directory `dir/data`); returns its path.
pub fn write(dir: &Path, sink: SocketAddr, arbiters: Option<usize>) -> io::Result<PathBuf> {
    let path = dir.join("impulsed.ron");
    std::fs::write(&path, render(&dir.join("data"), sink, arbiters))?;
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
            "127.0.0.1:40001".parse().unwrap(),
            None,
        );
        assert_eq!(
            text,
            "(\n    data_dir: \"/tmp/run/data\",\n    listeners: [(address: \"127.0.0.1:0\")],\n    routes: { \"*\": \"127.0.0.1:40001\" },\n)\n"
        );
        let v6 = render(Path::new("d"), "[::1]:25".parse().unwrap(), Some(2));
        assert!(v6.contains("\"*\": \"[::1]:25\""));
        assert!(v6.contains("    pools: (arbiters: 2),\n)"), "{v6}");
    }

    #[test]
    fn quotes_awkward_paths() {
        assert_eq!(ron_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }

    #[test]
    fn writes_into_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "127.0.0.1:9".parse().unwrap(), None).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("{:?}", dir.path().join("data").to_string_lossy())));
    }
}
