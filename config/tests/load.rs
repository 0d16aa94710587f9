//! Loading configs from RON text: the INTERFACE.md example, the embedded default, parse
//! errors with their positions, validation errors, and the lookups.

use std::{net::IpAddr, time::Duration as StdDuration};

use impulse_config::{defaults, Config, ConfigError, DomainCfg, TlsMode, DEFAULT_CONFIG};

/// The example config block of INTERFACE.md, verbatim.
const INTERFACE_EXAMPLE: &str = r#"(
    data_dir: "impulse-data",                  // spool/, logs/, control.sock live here
    listeners: [
        (address: "127.0.0.1:2525"),           // port 0 = pick a free port
        (address: "127.0.0.1:587",             // STARTTLS offered when cert+key are set
         tls_cert: "cert.pem", tls_key: "key.pem", require_auth: true),
    ],
    relay: (allow: ["127.0.0.0/8", "::1/128"]),// clients that may relay without AUTH
    auth: (users: {                            // AUTH PLAIN/LOGIN, only over TLS
        "alice": "$argon2id$v=19$...",         // PHC hash: `impulsectl hash-password`
    }),
    routes: {                                  // static next hop, bypassing MX lookup
        "example.com": "127.0.0.1:2526",       // "*" matches every domain not listed
    },
    dns: (servers: ["127.0.0.1:5353"]),        // default: the system resolver config
    delivery: (port: 25, ehlo_name: "mta.example.net"),  // port used for MX delivery
    domains: {                                 // per destination domain; "*" = default
        "*": (
            max_connections: 32,
            max_messages_per_connection: 1000,
            throttle: "1000/s",                // messages per period; none = unlimited
            retry_interval: "20m",             // doubles per attempt up to max_retry_interval
            max_retry_interval: "4h",
            message_expiration: "3d",
            tls: Opportunistic,                // Disabled | Opportunistic | Required
        ),
    },
    bindings: {                                // egress identities (virtual MTAs)
        "b1": (source: "127.0.0.2", ehlo_name: "b1.example.net"),
    },
    dkim: {                                    // per sending domain
        "example.net": (selector: "s1", key: "dkim.pem"),
    },
    http: (address: "127.0.0.1:8025"),         // optional: /metrics and the HTTP API
    pools: (blocking: 4),                      // sync-arbiter threads
)"#;

fn load(text: &str) -> Config {
    Config::from_ron_all_keys(text, "t.ron").unwrap_or_else(|e| panic!("{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match Config::from_ron_all_keys(text, "t.ron") {
        Ok(_) => panic!("expected errors for {text}"),
        Err(e) => e.to_string().lines().map(str::to_owned).collect(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn the_interface_example_loads_with_every_key_built() {
    // STARTTLS, AUTH and the HTTP endpoint are built: nothing in the example is refused.
    let cfg = Config::from_ron(INTERFACE_EXAMPLE, "t.ron").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg, load(INTERFACE_EXAMPLE));
    let implicit = r#"(listeners: [(address: "127.0.0.1:465", tls: Implicit, tls_cert: "c.pem", tls_key: "k.pem")])"#;
    assert_eq!(
        load(implicit).listeners[0].tls,
        impulse_config::ListenerTls::Implicit
    );
    assert!(
        errors(r#"(listeners: [(address: "127.0.0.1:465", tls: Implicit)])"#)
            .iter()
            .any(|e| e.contains("listeners[0].tls: Implicit needs tls_cert and tls_key"))
    );
}

#[test]
fn interface_example_loads() {
    let cfg = load(INTERFACE_EXAMPLE);
    assert_eq!(cfg.listeners.len(), 2);
    assert!(cfg.listeners[1].require_auth);
    assert_eq!(
        cfg.listeners[1].tls_key.as_deref(),
        Some("key.pem".as_ref())
    );
    assert_eq!(cfg.auth.users["alice"], "$argon2id$v=19$...");
    assert_eq!(cfg.route("example.com"), Some("127.0.0.1:2526"));
    assert_eq!(cfg.route("other.org"), None);
    assert_eq!(cfg.dns.servers, vec!["127.0.0.1:5353".parse().unwrap()]);
    assert_eq!(cfg.delivery.ehlo_name, "mta.example.net");
    let d = cfg.domain("anything.org");
    assert_eq!(d.throttle.unwrap().to_string(), "1000/s");
    assert_eq!(d.retry_interval.get(), StdDuration::from_secs(1200));
    assert_eq!(cfg.bindings["b1"].source, ip("127.0.0.2"));
    assert_eq!(cfg.dkim["example.net"].selector, "s1");
    assert_eq!(
        cfg.http.as_ref().unwrap().address,
        "127.0.0.1:8025".parse().unwrap()
    );
    assert_eq!(cfg.pools.blocking, 4);
}

#[test]
fn embedded_default_matches_builtin_defaults() {
    let cfg = Config::from_ron(DEFAULT_CONFIG, "default.ron").unwrap_or_else(|e| panic!("{e}"));
    let builtin = Config::default();
    assert_eq!(cfg, Config::embedded_default());
    assert_eq!(cfg.data_dir, builtin.data_dir);
    assert_eq!(cfg.listeners, builtin.listeners);
    assert_eq!(cfg.listeners[0].address, "127.0.0.1:2525".parse().unwrap());
    assert_eq!(cfg.relay, builtin.relay);
    assert_eq!(cfg.auth, builtin.auth);
    assert!(cfg.routes.is_empty(), "delivery is by MX");
    assert_eq!(cfg.dns, builtin.dns);
    assert_eq!(cfg.delivery, builtin.delivery);
    assert_eq!(cfg.domains.keys().collect::<Vec<_>>(), ["*"]);
    assert_eq!(cfg.domains["*"], DomainCfg::default());
    assert_eq!(cfg.domain("example.com"), builtin.domain("example.com"));
    assert_eq!(cfg.http, None);
    assert_eq!(cfg.pools, builtin.pools);
    assert_eq!(cfg.smtp, builtin.smtp);
    assert_eq!(cfg.shutdown_grace, builtin.shutdown_grace);
    assert!(cfg.relay_allowed(ip("127.0.0.1")) && cfg.relay_allowed(ip("::1")));
    assert!(!cfg.relay_allowed(ip("192.0.2.1")));
}

#[test]
fn builtin_defaults() {
    let cfg = Config::default();
    assert_eq!(cfg.smtp.max_message_size, 26_214_400);
    assert_eq!(cfg.smtp.max_recipients, 1000);
    assert_eq!(cfg.smtp.max_line_length, 1000);
    assert_eq!(cfg.smtp.idle_timeout.get(), StdDuration::from_secs(300));
    assert_eq!(cfg.shutdown_grace.get(), StdDuration::from_secs(30));
    assert_eq!(cfg.delivery.port, 25);
    assert!(!cfg.smtp.hostname.is_empty());
    assert_eq!(cfg.delivery.ehlo_name, defaults::hostname());
    let d = DomainCfg::default();
    assert_eq!(
        (d.max_connections, d.max_messages_per_connection),
        (32, 1000)
    );
    assert_eq!(d.throttle, None);
    assert_eq!(d.tls, TlsMode::Opportunistic);
    let secs = |x: impulse_config::Duration| x.get().as_secs();
    assert_eq!(
        [
            d.retry_interval,
            d.max_retry_interval,
            d.message_expiration,
            d.connect_timeout,
            d.command_timeout
        ]
        .map(secs),
        [1200, 14_400, 259_200, 60, 300]
    );
    assert!(cfg.validate().is_ok());
}

#[test]
fn blank_files_are_the_default() {
    for text in [
        "",
        "  \n",
        "// nothing\n",
        "()",
        "Config()",
        "#![enable(implicit_some)]\n()",
    ] {
        assert_eq!(load(text), Config::default(), "{text:?}");
    }
}

#[test]
fn only_routes() {
    let cfg = load(r#"(routes: {"*": "127.0.0.1:2526"})"#);
    assert_eq!(cfg.route("example.com"), Some("127.0.0.1:2526"));
    assert_eq!(cfg.listeners, Config::default().listeners);
}

#[test]
fn parse_errors_name_the_place() {
    // (text, expected first line of the error)
    let table = [
        (
            "(\n    domains: {\n        \"*\": (max_conections: 5),\n    },\n)",
            "t.ron:3:15: Unexpected field named `max_conections` in `DomainCfg`",
        ),
        ("(\n  bogus: 1,\n)", "t.ron:2:3: Unexpected field named `bogus` in `Config`"),
        (
            "(smtp: (idle_timeout: \"5x\"))",
            "t.ron:1:24: invalid duration \"5x\": unknown time unit \"x\"",
        ),
        (
            "(shutdown_grace: 30)",
            "t.ron:1:18: Expected a duration string like \"5m\" or \"1h 30m\"",
        ),
        (
            "(domains: {\"*\": (throttle: \"100/fortnight\")})",
            "t.ron:1:29: invalid rate \"100/fortnight\"",
        ),
        ("(domains: {\"x\": (throttle: \"0/s\")})", "t.ron:1:29: invalid rate \"0/s\""),
        (
            "(relay: (allow: [\"127.0.0.1/8\"]))",
            "t.ron:1:19: invalid CIDR \"127.0.0.1/8\": 127.0.0.1/8 has host bits set; did you mean 127.0.0.0/8?",
        ),
        ("(relay: (allow: [\"10.0.0.0/33\"]))", "t.ron:1:19: invalid CIDR \"10.0.0.0/33\""),
        (
            "(domains: {\"*\": (tls: Sometimes)})",
            "t.ron:1:23: Unexpected variant named `Sometimes` in enum `TlsMode`",
        ),
        (
            "(listeners: [(tls_cert: \"c.pem\")])",
            "t.ron:1:32: Unexpected missing field named `address` in `ListenerCfg`",
        ),
        ("(listeners: [(address: \"1.2.3.4\")])", "t.ron:1:25: invalid socket address syntax"),
        ("(", "t.ron:1:2: Unexpected end of RON"),
    ];
    for (text, want) in table {
        let got = errors(text);
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        assert!(
            got[0].starts_with(want),
            "{text}:\n got  {}\n want {want}",
            got[0]
        );
    }
}

#[test]
fn implicit_some() {
    let plain = load("(http: (address: \"127.0.0.1:8025\"), listeners: [(address: \"127.0.0.1:25\", hostname: \"h\")])");
    let explicit = load("(http: Some((address: \"127.0.0.1:8025\")), listeners: [(address: \"127.0.0.1:25\", hostname: Some(\"h\"))])");
    assert_eq!(plain, explicit);
    assert_eq!(plain.http.unwrap().address.port(), 8025);
    assert_eq!(plain.listeners[0].hostname.as_deref(), Some("h"));
    assert_eq!(
        load("(http: ())").http.unwrap().address,
        defaults::http_address()
    );
    assert_eq!(load("(http: None)").http, None);
}

#[test]
fn domain_entries_inherit_from_star() {
    let cfg = load(
        r#"(domains: {
            "*": (max_connections: 8, throttle: "100/m", retry_interval: "5m"),
            "Slow.Example": (max_connections: 2),
            "open.example": (throttle: None, tls: Required),
        })"#,
    );
    let slow = cfg.domain("slow.example");
    assert_eq!(slow.max_connections, 2);
    assert_eq!(slow.throttle.unwrap().to_string(), "100/m");
    assert_eq!(slow.retry_interval.to_string(), "5m");
    assert_eq!(slow.max_retry_interval, defaults::max_retry_interval());
    assert_eq!(cfg.domain("SLOW.EXAMPLE."), slow);
    let open = cfg.domain("open.example");
    assert_eq!(
        (open.max_connections, open.throttle, open.tls),
        (8, None, TlsMode::Required)
    );
    let other = cfg.domain("other.example");
    assert_eq!(
        (other.max_connections, other.throttle.unwrap().count),
        (8, 100)
    );
    // Without "*", unlisted domains get the built-in defaults and listed ones inherit them.
    let cfg = load(r#"(domains: {"a.example": (max_connections: 1)})"#);
    assert_eq!(cfg.domain("b.example"), DomainCfg::default());
    assert_eq!(
        cfg.domain("a.example"),
        DomainCfg {
            max_connections: 1,
            ..DomainCfg::default()
        }
    );
}

#[test]
fn routes_match_case_insensitively_then_wildcard() {
    let cfg = load(r#"(routes: {"Example.com": "127.0.0.1:1", "*": "[::1]:2"})"#);
    assert_eq!(cfg.route("example.com"), Some("127.0.0.1:1"));
    assert_eq!(cfg.route("EXAMPLE.COM"), Some("127.0.0.1:1"));
    assert_eq!(cfg.route("sub.example.com"), Some("[::1]:2"));
    let cfg = load(r#"(routes: {"example.com": "mx.example.net:25"})"#);
    assert_eq!(cfg.route("example.org"), None);
}

#[test]
fn relay_allowed_v4_v6_and_mapped() {
    let cfg = load(r#"(relay: (allow: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]))"#);
    for (addr, allowed) in [
        ("10.1.2.3", true),
        ("11.0.0.1", false),
        ("::ffff:10.1.2.3", true),
        ("::ffff:11.0.0.1", false),
        ("2001:db8::25", true),
        ("2001:db9::25", false),
        ("192.0.2.7", true),
        ("192.0.2.8", false),
        ("127.0.0.1", false),
        ("::1", false),
    ] {
        assert_eq!(cfg.relay_allowed(ip(addr)), allowed, "{addr}");
    }
    assert!(!load("(relay: (allow: []))").relay_allowed(ip("127.0.0.1")));
}

#[test]
fn validation_reports_every_problem_in_file_order() {
    let text = r#"(
    listeners: [
        (address: "127.0.0.1:25", tls_cert: "c.pem"),
        (address: "127.0.0.1:25", require_auth: true),
        (address: "127.0.0.1:0"),
        (address: "127.0.0.1:0"),
    ],
    routes: {
        "example.com": "127.0.0.1",
        "*": "mx.example.net:25",
    },
    domains: {
        "*": (max_connections: 0),
        "a.example": (retry_interval: "5h"),
        "b.example": (max_messages_per_connection: 0),
    },
    pools: (blocking: 0),
    smtp: (max_line_length: 512),
)"#;
    let got = errors(text);
    let want = [
        "t.ron:3:35: listeners[0].tls_cert: is set without tls_key",
        "t.ron:4:10: listeners[1].address: 127.0.0.1:25 is already used by listeners[0]",
        "t.ron:4:35: listeners[1].require_auth: needs tls_cert and tls_key: AUTH is only offered over TLS",
        "t.ron:4:35: listeners[1].require_auth: is set but auth.users is empty, so nobody could send",
        "t.ron:9:9: routes.\"example.com\": \"127.0.0.1\" is not host:port: the port is missing",
        "t.ron:13:15: domains.\"*\".max_connections: must be at least 1",
        "t.ron:14:23: domains.\"a.example\".retry_interval: 5h is longer than max_retry_interval (4h)",
        "t.ron:15:23: domains.\"b.example\".max_messages_per_connection: must be at least 1",
        "t.ron:17:13: pools.blocking: must be at least 1",
        "t.ron:18:12: smtp.max_line_length: 512 is below the 1000 octets RFC 5321 requires",
    ];
    assert_eq!(got, want);
}

#[test]
fn validation_without_a_position() {
    // The problem's key is not in the text at all: `FILE: message`.
    let mut cfg = Config::default();
    cfg.listeners.clear();
    let e = cfg.validate().unwrap_err();
    assert_eq!(
        e.to_string(),
        "<config>: listeners: at least one listener is needed"
    );
    assert_eq!(e.diagnostics().len(), 1);
    let got = errors("(listeners: [])");
    assert_eq!(
        got,
        ["t.ron:1:2: listeners: at least one listener is needed"]
    );
}

#[test]
fn more_validation() {
    let table = [
        (
            r#"(listeners: [(address: "127.0.0.1:25", tls_key: "k.pem")])"#,
            "listeners[0].tls_key: is set without tls_cert",
        ),
        (
            r#"(http: (address: "127.0.0.1:2525"))"#,
            "http.address: 127.0.0.1:2525 is already used by listeners[0]",
        ),
        (
            r#"(auth: (users: {"bob": "hunter2"}))"#,
            "auth.users.bob: is not a PHC password hash",
        ),
        (
            r#"(routes: {"a b": "x:1"})"#,
            "routes.\"a b\": is not a domain name",
        ),
        (
            r#"(routes: {"x.org": "x:0"})"#,
            "routes.\"x.org\": \"x:0\" is not host:port",
        ),
        (
            r#"(domains: {"A.org": (), "a.org": ()})"#,
            "domains.\"a.org\": is listed twice",
        ),
        (
            r#"(domains: {"*": (retry_interval: "0s")})"#,
            "domains.\"*\".retry_interval: must be longer than 0s",
        ),
        (r#"(delivery: (port: 0))"#, "delivery.port: must not be 0"),
        (
            r#"(delivery: (ehlo_name: ""))"#,
            "delivery.ehlo_name: must not be empty",
        ),
        (
            r#"(dkim: {"x.org": (selector: "", key: "k.pem")})"#,
            "dkim.\"x.org\".selector: must not be empty",
        ),
        (
            r#"(smtp: (max_recipients: 0))"#,
            "smtp.max_recipients: must be at least 1",
        ),
        (r#"(data_dir: "")"#, "data_dir: must not be empty"),
    ];
    for (text, want) in table {
        let got = errors(text);
        assert_eq!(got.len(), 1, "{text}: {got:?}");
        let msg = got[0]
            .splitn(4, ':')
            .nth(3)
            .unwrap_or_default()
            .trim_start();
        assert!(
            msg.starts_with(want),
            "{text}:\n got  {}\n want {want}",
            got[0]
        );
    }
    // A domain inheriting a bad "*" value is reported once, under "*".
    let got = errors(r#"(domains: {"*": (max_connections: 0), "a.org": (tls: Required)})"#);
    assert_eq!(
        got,
        ["t.ron:1:18: domains.\"*\".max_connections: must be at least 1"]
    );
}

#[test]
fn load_reads_files_and_reports_io_errors() {
    let dir = std::env::temp_dir().join(format!("impulse-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("good.ron");
    std::fs::write(&path, "(pools: (blocking: 2))").unwrap();
    assert_eq!(Config::load(&path).unwrap().pools.blocking, 2);
    let bad = dir.join("bad.ron");
    std::fs::write(&bad, "(\n  pools: (blocking: 2, x: 1),\n)").unwrap();
    let e = Config::load(&bad).unwrap_err().to_string();
    assert_eq!(
        e.split(": Unexpected").next().unwrap(),
        format!("{}:2:24", bad.display())
    );
    let missing = dir.join("missing.ron");
    let e = Config::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read: ", missing.display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn round_trips_through_ron() {
    for text in [INTERFACE_EXAMPLE, DEFAULT_CONFIG, "()"] {
        let cfg = load(text);
        let written = cfg.to_ron().unwrap();
        assert_eq!(load(&written), cfg, "{written}");
    }
}

#[test]
fn dns_servers_take_an_address_with_or_without_a_port() {
    let cfg = Config::from_ron(
        r#"(dns: (servers: ["127.0.0.1:5353", "127.0.0.2", "::1", "[::1]:5300"]))"#,
        "t.ron",
    )
    .unwrap();
    let got: Vec<String> = cfg.dns.servers.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        got,
        ["127.0.0.1:5353", "127.0.0.2:53", "[::1]:53", "[::1]:5300"]
    );
    let e = Config::from_ron(r#"(dns: (servers: ["dns.example"]))"#, "t.ron")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("t.ron:1:") && e.contains("not a name server address"),
        "{e}"
    );
}
