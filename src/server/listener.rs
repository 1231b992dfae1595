//! The listening sockets: every worker's own `SO_REUSEPORT` socket per address, all bound before
//! any worker starts so that a bad address fails start-up.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::observe::labels::ListenerKind;

/// Binds every worker's listeners before any worker starts, so a bad address fails start-up.
/// Port 0 is resolved once, then every worker binds the same port. Bound in order: `listen`,
/// `listen_proxy_protocol`, `listen_tls`. Returns, per worker, its
/// listeners, and the addresses actually bound.
pub fn bind_all(config: &Config) -> io::Result<(Vec<Vec<Listener>>, Vec<SocketAddr>)> {
    let mut per_worker: Vec<Vec<Listener>> = (0..config.workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::with_capacity(config.listen.len());
    let all = config.listen.iter().map(|&a| (a, ListenerKind::Plain));
    let proxied = (config.listen_proxy_protocol.iter()).map(|&a| (a, ListenerKind::ProxyProtocol));
    let tls = config.listen_tls.iter().map(|&a| (a, ListenerKind::Tls));
    for (addr, kind) in all.chain(proxied).chain(tls) {
        let first = listener(addr, config.backlog)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let actual = first.local_addr()?;
        bound.push(actual);
        let mut first = Some(first);
        for slot in per_worker.iter_mut() {
            let l = match first.take() {
                Some(l) => l,
                None => listener(actual, config.backlog).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen on {actual}: {e}"))
                })?,
            };
            slot.push(Listener { socket: l, kind });
        }
    }
    Ok((per_worker, bound))
}

/// One bound listening socket, and what its clients speak: plain HTTP, a PROXY protocol header
/// first, or TLS.
pub struct Listener {
    pub(super) socket: StdListener,
    pub(super) kind: ListenerKind,
}

fn listener(addr: SocketAddr, backlog: u32) -> io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    // Every accepted socket inherits it (Linux clones the listener's TCP options): one
    // `setsockopt` per listener instead of one per connection.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpStream};

    #[test]
    fn accepted_sockets_inherit_nodelay_from_the_listener() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let l = super::listener(addr, 16).unwrap();
        let _client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        // The listener is non-blocking: the connection is in its queue once `connect` returns.
        let (accepted, _) = l.accept().unwrap();
        let nodelay = socket2::SockRef::from(&accepted).tcp_nodelay().unwrap();
        assert!(nodelay, "conn::serve relies on the listener's TCP_NODELAY");
    }
}
