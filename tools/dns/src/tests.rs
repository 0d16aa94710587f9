//! The server answered through a real hickory resolver over loopback UDP.

use std::net::{IpAddr, Ipv4Addr};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};

use super::*;

fn resolver(server: &DnsServer) -> TokioResolver {
    let mut conn = ConnectionConfig::udp();
    conn.port = server.addr().port();
    let ns = NameServerConfig::new(server.addr().ip(), true, vec![conn]);
    let mut opts = ResolverOpts::default();
    opts.cache_size = 0;
    opts.attempts = 1;
    opts.timeout = Duration::from_secs(2);
    let mut b = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    );
    *b.options_mut() = opts;
    b.build().unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn serves_mx_a_txt_nodata_and_nxdomain() {
    let zone = Zone::new()
        .mx("example.test", 10, "mx1.example.test")
        .mx("example.test", 20, "mx2.example.test")
        .a("mx1.example.test", Ipv4Addr::new(127, 0, 0, 2))
        .txt("s1._domainkey.example.test", "v=DKIM1; k=ed25519; p=abc");
    let server = DnsServer::start(zone).unwrap();
    let r = resolver(&server);
    block_on(async {
        let mx = r.mx_lookup("example.test.").await.unwrap();
        let mut prefs: Vec<(u16, String)> = mx
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::MX(m) => Some((m.preference, m.exchange.to_string())),
                _ => None,
            })
            .collect();
        prefs.sort();
        assert_eq!(
            prefs,
            vec![
                (10, "mx1.example.test.".into()),
                (20, "mx2.example.test.".into())
            ]
        );
        let ips: Vec<IpAddr> = r
            .lookup_ip("mx1.example.test.")
            .await
            .unwrap()
            .iter()
            .collect();
        assert_eq!(ips, vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]);
        let txt = r.txt_lookup("s1._domainkey.example.test.").await.unwrap();
        assert_eq!(txt.answers().len(), 1);

        let nodata = r.mx_lookup("mx1.example.test.").await.unwrap_err();
        assert!(
            nodata.is_no_records_found() && !nodata.is_nx_domain(),
            "{nodata:?}"
        );
        let nx = r.mx_lookup("nowhere.test.").await.unwrap_err();
        assert!(nx.is_nx_domain(), "{nx:?}");
    });
    assert_eq!(server.queries("example.test", "MX"), 1);
}

#[test]
fn servfail_until_cleared_then_the_real_answer() {
    let zone = Zone::new()
        .mx("flaky.test", 10, "mx.flaky.test")
        .servfail("flaky.test", usize::MAX);
    let server = DnsServer::start(zone).unwrap();
    let r = resolver(&server);
    block_on(async {
        let e = r.mx_lookup("flaky.test.").await.unwrap_err();
        assert!(
            !e.is_no_records_found(),
            "SERVFAIL, not a negative answer: {e:?}"
        );
    });
    assert!(server.queries("flaky.test", "MX") >= 1);
    server.zone(|z| z.servfail("flaky.test", 0));
    block_on(async {
        assert_eq!(r.mx_lookup("flaky.test.").await.unwrap().answers().len(), 1);
    });
}

#[test]
fn null_mx_and_zone_changes() {
    let server = DnsServer::start(Zone::new().null_mx("nomail.test")).unwrap();
    let r = resolver(&server);
    block_on(async {
        let mx = r.mx_lookup("nomail.test.").await.unwrap();
        match &mx.answers()[0].data {
            RData::MX(m) => assert!(m.exchange.is_root() && m.preference == 0),
            other => panic!("{other:?}"),
        }
    });
    server.zone(|z| {
        z.remove("nomail.test")
            .a("nomail.test", Ipv4Addr::LOCALHOST)
    });
    block_on(async {
        assert!(r
            .mx_lookup("nomail.test.")
            .await
            .unwrap_err()
            .is_no_records_found());
    });
}
