//! What the DNS answers mean for delivery: plain functions, no actors, no sockets.
//!
//! RFC 5321 §5.1: the MX records of the domain, lowest preference first, equal
//! preferences in random order; no MX record at all (the name exists) → the domain itself
//! is the one exchanger (implicit MX); RFC 7505: a single MX of "." is a null MX — the
//! domain accepts no mail (`556 5.1.10`). A domain that does not exist (NXDOMAIN) fails
//! permanently (`550 5.1.2`); any other failure (SERVFAIL, timeout) is temporary
//! (`451 4.4.3`) and the message waits for its next attempt.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::logger::LoggedResponse;

/// One address to try, with the exchanger it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The exchanger's name ("mx1.example.com", no trailing dot), or the route's host.
    pub name: Arc<str>,
    pub preference: u16,
    pub addr: SocketAddr,
}

/// The next hops of a destination, in the order to try them, or why there are none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Hops(Arc<[Hop]>),
    /// The destination can never receive mail: every recipient fails permanently.
    Permanent(LoggedResponse),
    /// Not now: the messages wait for their next attempt.
    Temporary(LoggedResponse),
}

/// How a lookup ended, stripped of the resolver's types (see `classify` in the resolver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// The name exists but has no records of the asked type (NODATA).
    NoRecords,
    /// SERVFAIL, REFUSED, a timeout, no name server reachable…
    Failed(String),
}

/// What the MX answer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxPlan {
    /// Exchangers (name, preference) in the order to try them.
    Exchangers(Vec<(String, u16)>),
    /// RFC 7505 null MX.
    NullMx,
}

/// The exchangers of `domain` from its MX answer (`Ok(records)`, `(preference,
/// exchange)`) or the lookup's error. `shuffle` orders equal preferences (given a seed,
/// so tests are repeatable).
pub fn mx_plan(
    domain: &str,
    answer: Result<Vec<(u16, String)>, LookupError>,
    seed: u64,
) -> Result<MxPlan, Resolution> {
    let records = match answer {
        Ok(r) => r,
        Err(LookupError::NoRecords) => return Ok(MxPlan::Exchangers(vec![(domain.into(), 0)])),
        Err(LookupError::NoSuchName) => return Err(no_such_domain(domain)),
        Err(LookupError::Failed(why)) => return Err(temporary_dns(domain, "MX", &why)),
    };
    let mut hosts: Vec<(String, u16)> = records
        .into_iter()
        .map(|(pref, ex)| (ex.trim_end_matches('.').to_ascii_lowercase(), pref))
        .collect();
    // A null MX is "." alone; next to real exchangers it is ignored (RFC 7505 §3).
    let real = hosts.iter().filter(|(h, _)| !h.is_empty()).count();
    if real == 0 {
        return if hosts.is_empty() {
            // An MX answer without MX records: treat as NODATA.
            Ok(MxPlan::Exchangers(vec![(domain.into(), 0)]))
        } else {
            Ok(MxPlan::NullMx)
        };
    }
    hosts.retain(|(h, _)| !h.is_empty());
    hosts.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    hosts.dedup();
    shuffle_equal(&mut hosts, seed);
    Ok(MxPlan::Exchangers(hosts))
}

/// Shuffle runs of equal preference in place (Fisher–Yates with a xorshift stream).
fn shuffle_equal(hosts: &mut [(String, u16)], seed: u64) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut start = 0;
    while start < hosts.len() {
        let pref = hosts[start].1;
        let end = start + hosts[start..].iter().take_while(|h| h.1 == pref).count();
        for i in (start + 1..end).rev() {
            let j = start + (next() % (i - start + 1) as u64) as usize;
            hosts.swap(i, j);
        }
        start = end;
    }
}

/// The outcome of looking up every exchanger's addresses (in plan order): each
/// exchanger's addresses or its error.
pub fn hops(
    domain: &str,
    port: u16,
    implicit: bool,
    exchangers: Vec<(String, u16, Result<Vec<std::net::IpAddr>, LookupError>)>,
) -> Resolution {
    let mut out = Vec::new();
    let mut temporary = None;
    for (name, preference, addrs) in exchangers {
        match addrs {
            Ok(ips) => {
                let name: Arc<str> = name.into();
                for ip in ips {
                    let hop = Hop {
                        name: name.clone(),
                        preference,
                        addr: SocketAddr::new(ip, port),
                    };
                    if !out.contains(&hop) {
                        out.push(hop);
                    }
                }
            }
            Err(LookupError::Failed(why)) => temporary = Some((name, why)),
            Err(_) => {}
        }
    }
    if !out.is_empty() {
        return Resolution::Hops(out.into());
    }
    match temporary {
        Some((name, why)) => temporary_dns(&name, "A/AAAA", &why),
        None if implicit => Resolution::Permanent(LoggedResponse::new(
            550,
            Some("5.1.2".into()),
            format!("{domain} has no MX and no address record"),
        )),
        // Exchangers named but none resolves: an operator's mistake, perhaps mended soon.
        None => Resolution::Temporary(LoggedResponse::new(
            451,
            Some("4.4.4".into()),
            format!("no address for any MX host of {domain}"),
        )),
    }
}

pub fn null_mx(domain: &str) -> Resolution {
    Resolution::Permanent(LoggedResponse::new(
        556,
        Some("5.1.10".into()),
        format!("{domain} accepts no mail (null MX)"),
    ))
}

fn no_such_domain(domain: &str) -> Resolution {
    Resolution::Permanent(LoggedResponse::new(
        550,
        Some("5.1.2".into()),
        format!("domain {domain} does not exist (NXDOMAIN)"),
    ))
}

fn temporary_dns(name: &str, what: &str, why: &str) -> Resolution {
    Resolution::Temporary(LoggedResponse::new(
        451,
        Some("4.4.3".into()),
        format!("DNS {what} lookup for {name} failed: {why}"),
    ))
}

/// How long a resolution may be reused: the records' TTL for answers, the negative TTL
/// for permanent failures, a short while for temporary ones; within [`MIN_TTL`,
/// `MAX_TTL`].
pub fn cache_for(resolution: &Resolution, ttl: Option<Duration>) -> Duration {
    let ttl = match resolution {
        Resolution::Hops(_) | Resolution::Permanent(_) => ttl.unwrap_or(DEFAULT_TTL),
        Resolution::Temporary(_) => TEMPORARY_TTL,
    };
    ttl.clamp(MIN_TTL, MAX_TTL)
}

pub const MIN_TTL: Duration = Duration::from_secs(1);
pub const MAX_TTL: Duration = Duration::from_secs(3600);
const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// A SERVFAIL is remembered this long, so a burst of messages asks once.
const TEMPORARY_TTL: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn mx(list: &[(u16, &str)]) -> Result<Vec<(u16, String)>, LookupError> {
        Ok(list.iter().map(|(p, h)| (*p, h.to_string())).collect())
    }

    fn names(plan: Result<MxPlan, Resolution>) -> Vec<String> {
        match plan {
            Ok(MxPlan::Exchangers(v)) => v.into_iter().map(|(h, _)| h).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn preference_order_lowest_first() {
        let p = mx_plan(
            "d.test",
            mx(&[(20, "b.d.test."), (10, "A.d.test."), (30, "c.d.test.")]),
            7,
        );
        assert_eq!(names(p), ["a.d.test", "b.d.test", "c.d.test"]);
    }

    #[test]
    fn equal_preferences_are_shuffled_but_stay_in_their_band() {
        let list = mx(&[(10, "a."), (10, "b."), (10, "c."), (20, "z.")]);
        let mut firsts = std::collections::HashSet::new();
        for seed in 0..64 {
            let order = names(mx_plan("d", list.clone(), seed));
            assert_eq!(order[3], "z", "the higher preference stays last");
            firsts.insert(order[0].clone());
        }
        assert_eq!(
            firsts.len(),
            3,
            "every equal exchanger comes first sometimes"
        );
    }

    #[test]
    fn no_mx_records_means_the_domain_itself() {
        let p = mx_plan("d.test", Err(LookupError::NoRecords), 1);
        assert_eq!(p, Ok(MxPlan::Exchangers(vec![("d.test".into(), 0)])));
        assert_eq!(
            mx_plan("d.test", Ok(vec![]), 1),
            Ok(MxPlan::Exchangers(vec![("d.test".into(), 0)]))
        );
    }

    #[test]
    fn null_mx_alone_but_not_next_to_real_exchangers() {
        assert_eq!(mx_plan("d", mx(&[(0, ".")]), 1), Ok(MxPlan::NullMx));
        assert_eq!(names(mx_plan("d", mx(&[(0, "."), (10, "mx.")]), 1)), ["mx"]);
        match null_mx("d.test") {
            Resolution::Permanent(r) => {
                assert_eq!((r.code, r.enhanced.as_deref()), (556, Some("5.1.10")))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nxdomain_is_permanent_servfail_temporary() {
        match mx_plan("gone.test", Err(LookupError::NoSuchName), 1) {
            Err(Resolution::Permanent(r)) => {
                assert_eq!((r.code, r.enhanced.as_deref()), (550, Some("5.1.2")));
                assert!(r.text.contains("gone.test"));
            }
            other => panic!("{other:?}"),
        }
        match mx_plan("d", Err(LookupError::Failed("SERVFAIL".into())), 1) {
            Err(Resolution::Temporary(r)) => {
                assert_eq!((r.code, r.enhanced.as_deref()), (451, Some("4.4.3")))
            }
            other => panic!("{other:?}"),
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn hops_keep_exchanger_order_and_skip_the_unresolvable() {
        let r = hops(
            "d",
            25,
            false,
            vec![
                ("mx1".into(), 10, Ok(vec![ip(2), ip(3)])),
                ("broken".into(), 15, Err(LookupError::NoSuchName)),
                ("mx2".into(), 20, Ok(vec![ip(4), ip(2)])),
            ],
        );
        let Resolution::Hops(h) = r else {
            panic!("{r:?}")
        };
        let got: Vec<(String, SocketAddr)> =
            h.iter().map(|h| (h.name.to_string(), h.addr)).collect();
        assert_eq!(
            got,
            vec![
                ("mx1".into(), "127.0.0.2:25".parse().unwrap()),
                ("mx1".into(), "127.0.0.3:25".parse().unwrap()),
                ("mx2".into(), "127.0.0.4:25".parse().unwrap()),
                ("mx2".into(), "127.0.0.2:25".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn no_address_anywhere() {
        let implicit = hops(
            "d",
            25,
            true,
            vec![("d".into(), 0, Err(LookupError::NoRecords))],
        );
        assert!(
            matches!(implicit, Resolution::Permanent(ref r) if r.enhanced.as_deref() == Some("5.1.2"))
        );
        let named = hops(
            "d",
            25,
            false,
            vec![("mx".into(), 0, Err(LookupError::NoSuchName))],
        );
        assert!(
            matches!(named, Resolution::Temporary(ref r) if r.enhanced.as_deref() == Some("4.4.4"))
        );
        let flaky = hops(
            "d",
            25,
            false,
            vec![("mx".into(), 0, Err(LookupError::Failed("timeout".into())))],
        );
        assert!(matches!(flaky, Resolution::Temporary(ref r) if r.text.contains("timeout")));
    }

    #[test]
    fn cache_lifetimes_are_bounded() {
        let hops = Resolution::Hops(Arc::from(vec![]));
        assert_eq!(
            cache_for(&hops, Some(Duration::from_secs(60))),
            Duration::from_secs(60)
        );
        assert_eq!(cache_for(&hops, Some(Duration::ZERO)), MIN_TTL);
        assert_eq!(cache_for(&hops, Some(Duration::from_secs(86400))), MAX_TTL);
        let t = Resolution::Temporary(LoggedResponse::new(451, None, "x"));
        assert_eq!(cache_for(&t, Some(Duration::from_secs(600))), TEMPORARY_TTL);
    }
}
