//! What each open connection costs in the worker: its task is the `conn::serve` future, kept for
//! as long as the connection (an idle tunnel included). Short-lived states (a dial, a forwarded
//! request, an error's answer, pacing, the out-of-fds copy) are boxed so they do not grow every
//! task, the idle timeout is an entry in the worker's `IdleClock` rather than a 640-byte runtime
//! timer, and futures are pinned in place rather than moved into another async fn (which keeps a
//! moved-from copy). This test keeps it that way: the task was 7.8 KB when a dial's race and a
//! timer were inlined, 4.6 KB before the idle clock, and is under 2 KB now.

use std::rc::Rc;

use monoio::net::TcpStream;
use ringgate::observe::labels::ListenerKind::Plain;
use ringgate::server::shard::Shard;

fn future_size<F, Fut>(_: &F) -> usize
where
    F: Fn(TcpStream, Rc<Shard>) -> Fut,
{
    std::mem::size_of::<Fut>()
}

#[test]
fn a_connections_task_stays_small() {
    let serve = |s: TcpStream, shard: Rc<Shard>| {
        let s = ringgate::conn::ClientStream::plain(s, Plain);
        ringgate::conn::serve(s, "127.0.0.1:1".parse().unwrap(), shard)
    };
    let relay = |s: TcpStream, shard: Rc<Shard>| async move {
        ringgate::tunnel::relay(&s, &s, &shard, None).await
    };
    let (serve, relay) = (future_size(&serve), future_size(&relay));
    eprintln!("conn::serve future {serve} bytes, tunnel::relay future {relay} bytes");
    assert!(serve <= 2048, "conn::serve future grew to {serve} bytes");
    assert!(relay <= 1100, "tunnel::relay future grew to {relay} bytes");
}
