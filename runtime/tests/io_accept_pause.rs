//! Running out of descriptors while accepting: the loop logs, pauses accepting for a
//! moment instead of spinning on `EMFILE`, and accepts the waiting connections once
//! descriptors are free again. Alone in its file: it lowers the process's fd limit to
//! leave no descriptor free while the clients connect.

mod io_common;

use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::Duration;

use impulse_runtime::io::{self, IoConfig};
use io_common::*;

fn nofile() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn set_nofile(lim: &libc::rlimit) {
    // SAFETY: `lim` is a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, lim) }, 0);
}

/// Open descriptors, by number.
fn open_fds() -> Vec<u64> {
    let dir = std::fs::read_dir("/proc/self/fd").unwrap();
    let listed: Vec<u64> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // The listing included its own descriptor, closed by now.
    // SAFETY: F_GETFD only queries the descriptor's flags.
    listed
        .into_iter()
        .filter(|&fd| unsafe { libc::fcntl(fd as libc::c_int, libc::F_GETFD) } != -1)
        .collect()
}

/// The soft limit that leaves exactly `free` descriptors to allocate.
fn limit_leaving(free: u64) -> u64 {
    let fds = open_fds();
    (0u64..)
        .find(|&l| l - fds.iter().filter(|&&fd| fd < l).count() as u64 == free)
        .unwrap()
}

/// Connect the blocking socket `fd` to `addr` (IPv4) and hand it to std.
fn connect(fd: libc::c_int, addr: SocketAddr) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sin` is a valid sockaddr_in of length `len`.
    let rc = unsafe { libc::connect(fd, &sin as *const _ as *const libc::sockaddr, len) };
    assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a connected socket we own.
    unsafe { TcpStream::from_raw_fd(fd) }
}

#[actix_rt::test]
async fn emfile_pauses_accepting_then_recovers() {
    const CLIENTS: usize = 3;
    let io = io::spawn(IoConfig::default()).unwrap();
    let (probe, mut events) = probe();
    let (_, addr) = io.listen_tcp(local0(), probe.clone().recipient()).unwrap();

    // Client sockets exist before the limit drops; connecting needs no descriptor.
    let sockets: Vec<libc::c_int> = (0..CLIENTS)
        // SAFETY: plain syscall.
        .map(|_| unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) })
        .collect();
    assert!(sockets.iter().all(|&fd| fd >= 0));
    let original = nofile();
    let tight = libc::rlimit {
        rlim_cur: limit_leaving(0),
        rlim_max: original.rlim_max,
    };
    set_nofile(&tight);
    let clients: Vec<TcpStream> = sockets.into_iter().map(|fd| connect(fd, addr)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let starved = io.stats();
    set_nofile(&original);
    assert_eq!(starved.accepted_total, 0, "nothing could be accepted");
    assert!(io.is_running());

    // Descriptors are back: the paused listener retries and takes them all.
    for _ in 0..CLIENTS {
        events.accepted().await;
    }
    assert_eq!(io.stats().accepted_total, CLIENTS as u64);
    drop(clients);
    io.shutdown();
}
