//! # Layout
//! A loopback authoritative DNS server for tests and benchmarks, built on hickory-server:
//! [`Zone`] holds the records (MX, A, AAAA, TXT) and scripted failures; [`DnsServer`]
//! serves it over UDP and TCP on a `127.0.0.1` port of its own, on a thread of its own
//! (a current-thread tokio runtime), until dropped.
//!
//! Answers follow the zone: records of the asked type → NOERROR with them; a name that
//! has records of other types only → NOERROR with no answer (NODATA) and the zone's SOA
//! for negative caching; a name with no records at all → NXDOMAIN with the SOA. A name
//! scripted with [`Zone::servfail`] answers SERVFAIL that many times first. Every query
//! is counted per (name, type), so a test can say how often a resolver asked.
//!
//! The zone can be changed while the server runs ([`DnsServer::zone`]).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, MX, SOA, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;

/// Records and scripted failures, by lower-case absolute name ("mx1.example.test.").
#[derive(Debug, Clone)]
pub struct Zone {
    ttl: u32,
    records: HashMap<String, Vec<Record>>,
    servfail: HashMap<String, usize>,
}

impl Default for Zone {
    fn default() -> Zone {
        Zone::new()
    }
}

/// `name` as the absolute, lower-case key the zone uses.
fn key(name: &str) -> String {
    let mut k = name.to_ascii_lowercase();
    if !k.ends_with('.') {
        k.push('.');
    }
    k
}

fn name(s: &str) -> Name {
    Name::from_ascii(key(s)).unwrap_or_else(|e| panic!("bad DNS name {s:?}: {e}"))
}

impl Zone {
    /// An empty zone whose records live 300 s.
    pub fn new() -> Zone {
        Zone {
            ttl: 300,
            records: HashMap::new(),
            servfail: HashMap::new(),
        }
    }

    /// The TTL of records added from now on (and of the negative answers).
    pub fn ttl(mut self, ttl: u32) -> Zone {
        self.ttl = ttl;
        self
    }

    fn add(mut self, owner: &str, rdata: RData) -> Zone {
        let record = Record::from_rdata(name(owner), self.ttl, rdata);
        self.records.entry(key(owner)).or_default().push(record);
        self
    }

    /// An MX record: `domain` is served by `exchange` at `preference`.
    pub fn mx(self, domain: &str, preference: u16, exchange: &str) -> Zone {
        let exchange = name(exchange);
        self.add(domain, RData::MX(MX::new(preference, exchange)))
    }

    /// A null MX (RFC 7505): `domain` accepts no mail.
    pub fn null_mx(self, domain: &str) -> Zone {
        self.add(domain, RData::MX(MX::new(0, Name::root())))
    }

    pub fn a(self, owner: &str, ip: Ipv4Addr) -> Zone {
        self.add(owner, RData::A(A(ip)))
    }

    pub fn aaaa(self, owner: &str, ip: Ipv6Addr) -> Zone {
        self.add(owner, RData::AAAA(AAAA(ip)))
    }

    /// A TXT record (one string; hickory splits long ones into 255-byte pieces).
    pub fn txt(self, owner: &str, text: &str) -> Zone {
        let parts = text
            .as_bytes()
            .chunks(255)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        self.add(owner, RData::TXT(TXT::new(parts)))
    }

    /// Answer SERVFAIL for `owner` (any type) the next `times` times it is asked.
    pub fn servfail(mut self, owner: &str, times: usize) -> Zone {
        self.servfail.insert(key(owner), times);
        self
    }

    /// Drop every record of `owner` (it becomes NXDOMAIN).
    pub fn remove(mut self, owner: &str) -> Zone {
        self.records.remove(&key(owner));
        self
    }

    fn soa(&self) -> Record {
        let soa = SOA::new(
            name("ns.test."),
            name("hostmaster.test."),
            1,
            3600,
            600,
            86400,
            self.ttl,
        );
        Record::from_rdata(Name::root(), self.ttl, RData::SOA(soa))
    }

    fn answer(&mut self, owner: &str, rtype: RecordType) -> Answer {
        if let Some(left) = self.servfail.get_mut(owner) {
            if *left > 0 {
                *left -= 1;
                return Answer::ServFail;
            }
        }
        match self.records.get(owner) {
            None => Answer::NxDomain(self.soa()),
            Some(all) => {
                let found: Vec<Record> = all
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .cloned()
                    .collect();
                if found.is_empty() {
                    Answer::NoData(self.soa())
                } else {
                    Answer::Records(found)
                }
            }
        }
    }
}

enum Answer {
    Records(Vec<Record>),
    NoData(Record),
    NxDomain(Record),
    ServFail,
}

#[derive(Default)]
struct State {
    zone: Mutex<Zone>,
    queries: Mutex<HashMap<(String, RecordType), usize>>,
}

struct Handler(Arc<State>);

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let builder = MessageResponseBuilder::new(&request.queries, None);
        let Ok(info) = request.request_info() else {
            let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return send(&mut response, msg, request).await;
        };
        let owner = key(&info.query.name().to_string());
        let rtype = info.query.query_type();
        *self
            .0
            .queries
            .lock()
            .unwrap()
            .entry((owner.clone(), rtype))
            .or_default() += 1;
        let answer = self.0.zone.lock().unwrap().answer(&owner, rtype);
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.authoritative = true;
        match answer {
            Answer::ServFail => {
                let msg = builder.error_msg(&request.metadata, ResponseCode::ServFail);
                send(&mut response, msg, request).await
            }
            Answer::Records(records) => {
                let msg = builder.build(meta, records.iter(), [], [], []);
                send(&mut response, msg, request).await
            }
            Answer::NoData(soa) => {
                let msg = builder.build(meta, [], [&soa], [], []);
                send(&mut response, msg, request).await
            }
            Answer::NxDomain(soa) => {
                meta.response_code = ResponseCode::NXDomain;
                let msg = builder.build(meta, [], [&soa], [], []);
                send(&mut response, msg, request).await
            }
        }
    }
}

async fn send<'a, R: ResponseHandler>(
    response: &mut R,
    msg: hickory_server::zone_handler::MessageResponse<
        '_,
        'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
        impl Iterator<Item = &'a Record> + Send + 'a,
    >,
    request: &Request,
) -> ResponseInfo {
    match response.send_response(msg).await {
        Ok(info) => info,
        Err(_) => {
            let mut metadata = Metadata::response_from_request(&request.metadata);
            metadata.response_code = ResponseCode::ServFail;
            Header {
                metadata,
                counts: HeaderCounts::default(),
            }
            .into()
        }
    }
}

/// A running server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serve `zone` on `127.0.0.1`, UDP and TCP on the same free port.
    pub fn start(zone: Zone) -> io::Result<DnsServer> {
        DnsServer::start_on("127.0.0.1:0".parse().unwrap(), zone)
    }

    /// Serve `zone` on `addr` (port 0 picks a free port, the same for UDP and TCP).
    pub fn start_on(addr: SocketAddr, zone: Zone) -> io::Result<DnsServer> {
        // Port 0: the UDP port the kernel picks may be taken for TCP (by another test's
        // listener); pick again a few times.
        let mut tries = if addr.port() == 0 { 20 } else { 1 };
        let (udp, tcp) = loop {
            let udp = std::net::UdpSocket::bind(addr)?;
            let picked = udp.local_addr()?;
            match std::net::TcpListener::bind(picked) {
                Ok(tcp) => break (udp, tcp),
                Err(e) if tries > 1 && e.kind() == io::ErrorKind::AddrInUse => tries -= 1,
                Err(e) => return Err(e),
            }
        };
        let addr = udp.local_addr()?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let state = Arc::new(State {
            zone: Mutex::new(zone),
            queries: Mutex::default(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (up_tx, up_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let handler = Handler(state.clone());
        let thread = std::thread::Builder::new()
            .name("impulse-dns".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = up_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut server = Server::new(handler);
                    let sockets = tokio::net::UdpSocket::from_std(udp)
                        .and_then(|u| Ok((u, tokio::net::TcpListener::from_std(tcp)?)));
                    match sockets {
                        Ok((u, t)) => {
                            server.register_socket(u);
                            server.register_listener(t, Duration::from_secs(5), 64);
                            let _ = up_tx.send(Ok(()));
                        }
                        Err(e) => {
                            let _ = up_tx.send(Err(e));
                            return;
                        }
                    }
                    let _ = stopped.await;
                    let _ = server.shutdown_gracefully().await;
                });
            })?;
        up_rx
            .recv()
            .map_err(|_| io::Error::other("DNS server thread ended at start"))??;
        Ok(DnsServer {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it serves (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Change the zone while serving.
    pub fn zone(&self, change: impl FnOnce(Zone) -> Zone) {
        let mut z = self.state.zone.lock().unwrap();
        let old = std::mem::take(&mut *z);
        *z = change(old);
    }

    /// How many queries for `owner` of type `rtype` ("MX", "A", "AAAA", "TXT") came in.
    pub fn queries(&self, owner: &str, rtype: &str) -> usize {
        let rtype: RecordType = rtype.parse().unwrap_or(RecordType::Unknown(0));
        self.state
            .queries
            .lock()
            .unwrap()
            .get(&(key(owner), rtype))
            .copied()
            .unwrap_or(0)
    }

    /// Queries of any name and type.
    pub fn total_queries(&self) -> usize {
        self.state.queries.lock().unwrap().values().sum()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
