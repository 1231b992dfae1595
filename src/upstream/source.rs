//! Egress source addresses (`bind_source`): upstream connections made from several local addresses
//! in turn, so that more than ~64k of them can be open to one destination (each source address has
//! its own ephemeral ports for a destination).
//!
//! A connection from a source is set up by hand: a non-blocking socket with
//! `IP_BIND_ADDRESS_NO_PORT` (the port is chosen at connect time, per destination, instead of being
//! reserved for every destination at bind time), bound to the source, connected, and waited on
//! until writable; then it gets the blocking mode the runtime's driver expects (io_uring: blocking,
//! epoll: non-blocking), as a socket monoio made itself would have.

use std::cell::Cell;
use std::io;
use std::net::{IpAddr, SocketAddr};

use monoio::net::TcpStream;
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::sys;

/// One worker's source addresses and where it is in each family's turn.
pub struct Sources {
    v4: Vec<IpAddr>,
    v6: Vec<IpAddr>,
    next_v4: Cell<usize>,
    next_v6: Cell<usize>,
}

impl Sources {
    pub fn new(addrs: &[IpAddr]) -> Sources {
        let (v4, v6) = addrs.iter().partition(|a| a.is_ipv4());
        Sources {
            v4,
            v6,
            next_v4: Cell::new(0),
            next_v6: Cell::new(0),
        }
    }

    /// The source for a connection to `to`, if any of its family is configured.
    pub fn pick(&self, to: SocketAddr) -> Option<IpAddr> {
        let (family, next) = if to.is_ipv4() {
            (&self.v4, &self.next_v4)
        } else {
            (&self.v6, &self.next_v6)
        };
        if family.is_empty() {
            return None;
        }
        let n = next.get();
        next.set(n.wrapping_add(1));
        Some(family[n % family.len()])
    }

    /// Connects to `to`, from the next source of its family (or from where the kernel chooses).
    pub async fn connect(&self, to: SocketAddr) -> io::Result<TcpStream> {
        match self.pick(to) {
            None => TcpStream::connect_addr(to).await,
            Some(from) => connect_from(from, to).await,
        }
    }
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(to),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )?;
    sys::bind_address_no_port(&socket)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    match socket.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(socket.into())?;
    stream.writable(false).await?;
    let fd = sys::fd_of(&stream);
    let socket = SockRef::from(&fd);
    if let Some(e) = socket.take_error()? {
        return Err(e);
    }
    // Connected: now the mode monoio's own sockets have on this driver.
    socket.set_nonblocking(monoio::utils::is_legacy())?;
    Ok(stream)
}

/// Whether `ip` is an address of this host: whether a socket can be bound to it (three syscalls,
/// none of which waits; `IP_BIND_ADDRESS_NO_PORT` so no port is taken even for a moment). Only an
/// "address not available" answer means no: on any other error the address counts as ours, so a
/// loop is never missed because a probe failed (a refused request beats a proxy feeding itself).
/// With `net.ipv4.ip_nonlocal_bind` on, every address counts as ours.
pub fn is_host_address(ip: IpAddr) -> bool {
    let at = SocketAddr::new(ip, 0);
    let socket = match Socket::new(Domain::for_address(at), Type::STREAM, None) {
        Ok(s) => s,
        Err(_) => return true,
    };
    // Best effort: without it the bind below only holds an ephemeral port until the close.
    let _ = sys::bind_address_no_port(&socket);
    match socket.bind(&at.into()) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() != Some(libc::EADDRNOTAVAIL),
    }
}

/// Checks at start that every source can be bound (that it is an address of this host), so a typo
/// fails the start rather than every upstream connection.
pub fn check(addrs: &[IpAddr]) -> io::Result<()> {
    for &ip in addrs {
        let socket = Socket::new(
            Domain::for_address(SocketAddr::new(ip, 0)),
            Type::STREAM,
            None,
        )?;
        sys::bind_address_no_port(&socket)?;
        socket.bind(&SocketAddr::new(ip, 0).into()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("bind_source {ip}: {e} (not an address of this host?)"),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_takes_its_own_sources_in_turn() {
        let s = Sources::new(&[
            "10.0.0.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
        ]);
        let v4: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::9]:443".parse().unwrap();
        let picks: Vec<_> = [v4, v6, v4, v6, v4]
            .iter()
            .map(|&to| s.pick(to).unwrap().to_string())
            .collect();
        assert_eq!(
            picks,
            [
                "10.0.0.1",
                "2001:db8::1",
                "10.0.0.2",
                "2001:db8::1",
                "10.0.0.1"
            ]
        );
        let only_v4 = Sources::new(&["10.0.0.1".parse().unwrap()]);
        assert_eq!(only_v4.pick(v6), None, "no IPv6 source: the kernel chooses");
        assert_eq!(Sources::new(&[]).pick(v4), None);
    }

    #[test]
    fn host_addresses_are_told_from_foreign_ones() {
        assert!(is_host_address("127.0.0.3".parse().unwrap()));
        assert!(!is_host_address("192.0.2.77".parse().unwrap()));
    }

    #[test]
    fn a_foreign_address_fails_the_check() {
        assert!(check(&["127.0.0.2".parse().unwrap()]).is_ok());
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            assert!(check(&["::1".parse().unwrap()]).is_ok());
        }
        let e = check(&["192.0.2.77".parse().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("bind_source 192.0.2.77"), "{e}");
    }
}
