//! What each open connection costs in the worker: its task is the `conn::serve` future, kept for
//! as long as the connection (an idle tunnel included). Short-lived states (a dial, a forwarded
//! request, pacing, the out-of-fds copy) are boxed so they do not grow every task; this test keeps
//! it that way (it once grew to 7.8 KB when a dial's race and a timer were inlined).

use std::rc::Rc;

use monoio::net::TcpStream;
use ringgate::shard::Shard;

fn future_size<F, Fut>(_: &F) -> usize
where
    F: Fn(TcpStream, Rc<Shard>) -> Fut,
{
    std::mem::size_of::<Fut>()
}

#[test]
fn a_connections_task_stays_small() {
    let serve = |s: TcpStream, shard: Rc<Shard>| {
        ringgate::conn::serve(s, "127.0.0.1:1".parse().unwrap(), false, shard)
    };
    let relay = |s: TcpStream, shard: Rc<Shard>| async move {
        ringgate::tunnel::relay(&s, &s, &shard, None).await
    };
    let (serve, relay) = (future_size(&serve), future_size(&relay));
    eprintln!("conn::serve future {serve} bytes, tunnel::relay future {relay} bytes");
    assert!(serve <= 4800, "conn::serve future grew to {serve} bytes");
    assert!(relay <= 3500, "tunnel::relay future grew to {relay} bytes");
}
