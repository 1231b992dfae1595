//! The only module allowed to say `unsafe`: thin, checked wrappers over the syscalls the relays need
//! (`splice(2)`, `pipe2(2)`, `fcntl(2)`, non-blocking `read`/`write`, `shutdown(2)`), and
//! `getaddrinfo(3)` for the system resolver (its error codes, which std does not expose).
//!
//! Every wrapper takes borrowed fds (`BorrowedFd`) or owns them (`OwnedFd`), so no wrapper can be
//! handed a closed or dangling descriptor by safe code, and every buffer is passed as a slice, so the
//! kernel is never told a length longer than the memory behind it.
#![allow(unsafe_code)]

#[cfg(feature = "negotiate")]
pub mod gss;

use std::ffi::{CStr, CString};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Turns a `-1` return into the thread's `errno`.
fn check(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// Moves up to `len` bytes from `from` to `to` without copying through user space; one side must be
/// a pipe. Never waits: `SPLICE_F_NONBLOCK` keeps the pipe side from blocking and the socket side must
/// be `O_NONBLOCK` (see [`set_nonblocking`]). `Ok(0)` from a socket means EOF.
pub fn splice(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: both fds are borrowed, so they stay open for the duration of the call; null offsets
    // are valid for pipes and sockets (they have no file position); splice touches no user memory.
    let ret = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    check(ret)
}

/// Creates a non-blocking, close-on-exec pipe: `(read end, write end)`.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid, writable array of two c_ints, as pipe2 requires.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else; we take ownership once.
    unsafe { Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))) }
}

/// Sets a pipe's capacity (`F_SETPIPE_SZ`); the kernel rounds up to a power-of-two number of pages and
/// returns the size it chose.
pub fn set_pipe_size(fd: BorrowedFd<'_>, size: usize) -> io::Result<usize> {
    let size =
        libc::c_int::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the fd is borrowed and open; F_SETPIPE_SZ takes an int argument and touches no memory.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    check(ret as libc::ssize_t)
}

/// A pipe's capacity in bytes (`F_GETPIPE_SZ`).
pub fn pipe_size(fd: BorrowedFd<'_>) -> io::Result<usize> {
    // SAFETY: the fd is borrowed and open; F_GETPIPE_SZ takes no argument and touches no memory.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETPIPE_SZ) };
    check(ret as libc::ssize_t)
}

/// Puts a socket into non-blocking mode, so a raw `splice`/`read`/`write` on it can never park the
/// worker thread (monoio's io_uring driver leaves sockets blocking).
///
/// One `ioctl(FIONBIO)` (where `fcntl` would need a read and a write of the flags: two syscalls per
/// socket, four per tunnel).
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the fd is borrowed and open; FIONBIO reads one c_int through the pointer, which
    // points at `on` for the whole call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONBIO, &raw const on) };
    check(ret as libc::ssize_t).map(drop)
}

/// Bytes waiting to be read from a pipe or socket (`ioctl(FIONREAD)`).
pub fn unread(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: the fd is borrowed and open; FIONREAD writes one c_int through the pointer, which
    // points at `n`, writable for the whole call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &raw mut n) };
    check(ret as libc::ssize_t).map(|_| n as usize)
}

/// Non-blocking `read(2)` into `buf`; `Ok(0)` is EOF.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the fd is borrowed and open; the pointer and length describe `buf`, which is writable
    // and outlives the call.
    let ret = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    check(ret)
}

/// Whether a kept idle socket is still fit for a new request: open, nothing unread, no error.
/// Peeks one byte without waiting (`MSG_PEEK | MSG_DONTWAIT`), so it never blocks and never
/// consumes anything: "would block" is the only healthy answer; EOF, unsolicited bytes (a stale
/// response, a `408` the origin sent before closing) and errors all mean "do not reuse".
pub(crate) fn is_idle_and_open<T: OwnsFd>(socket: &T) -> bool {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    let peeked = socket2::SockRef::from(&fd_of(socket))
        .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT);
    matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` (Linux 4.2+): a socket bound to an address before `connect`
/// gets its port at connect time, unique per destination, rather than one reserved at bind time
/// for every destination (which would cap a source address at ~64k connections in all).
pub fn bind_address_no_port(socket: &socket2::Socket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the socket is open (borrowed for the call); the option value is a c_int that lives
    // across the call, and its size is passed with it.
    let ret = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(ret as libc::ssize_t).map(drop)
}

/// Non-blocking `send(2)` of `buf` (`MSG_NOSIGNAL`: a reset peer is an error, not a SIGPIPE).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the fd is borrowed and open; the pointer and length describe `buf`, which outlives the
    // call and is only read.
    let ret = unsafe {
        libc::send(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    check(ret)
}

/// Copies as much of `src` as fits into an owned I/O buffer the way a read fills it (from
/// `write_ptr()`, at most `bytes_total()` bytes, then `set_init`): how decrypted TLS bytes reach a
/// buffer that monoio's read interface lends, without zeroing it first. Returns the bytes copied.
pub fn copy_into<T: monoio::buf::IoBufMut>(dst: &mut T, src: &[u8]) -> usize {
    let n = src.len().min(dst.bytes_total());
    // SAFETY: `IoBufMut` promises `write_ptr()..write_ptr() + bytes_total()` is writable memory the
    // buffer owns (what a kernel read may fill); the copy writes `n <= bytes_total()` bytes there,
    // from `src`, which cannot overlap it (we hold `&mut dst`); `set_init(n)` then covers exactly
    // the bytes written, as after a read of `n` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), dst.write_ptr(), n);
        dst.set_init(n);
    }
    n
}

/// The initialised bytes of an owned I/O buffer (what a write sends).
pub fn io_buf_bytes<T: monoio::buf::IoBuf>(buf: &T) -> &[u8] {
    // SAFETY: `IoBuf` promises `read_ptr()..read_ptr() + bytes_init()` is initialised memory the
    // buffer owns and does not move; the slice borrows `buf`, so it cannot outlive it.
    unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) }
}

/// [`copy_into`] for a vectored read: fills the first iovec only (as a short read may).
pub fn copy_into_iovecs<T: monoio::buf::IoVecBufMut>(dst: &mut T, src: &[u8]) -> usize {
    // SAFETY: the raw view of `dst`'s first iovec is used only within this call, while `dst` is
    // held mutably and so neither freed nor moved.
    let n = match unsafe { monoio::buf::RawBuf::new_from_iovec_mut(dst) } {
        Some(mut first) => copy_into(&mut first, src),
        None => 0,
    };
    // SAFETY: the first `n` bytes of the iovecs (all in the first one) were just written.
    unsafe { dst.set_init(n) };
    n
}

/// The bytes of a vectored write's first iovec (a write may take fewer than offered).
pub fn first_iovec<T: monoio::buf::IoVecBuf>(src: &T) -> &[u8] {
    // SAFETY: the raw view of `src`'s first iovec describes initialised memory `src` owns; the
    // slice made from it borrows `src`, so it cannot outlive the buffer.
    match unsafe { monoio::buf::RawBuf::new_from_iovec(src) } {
        Some(first) => unsafe {
            // SAFETY: as above: `read_ptr()..+bytes_init()` is the first iovec's initialised part.
            std::slice::from_raw_parts(
                monoio::buf::IoBuf::read_ptr(&first),
                monoio::buf::IoBuf::bytes_init(&first),
            )
        },
        None => &[],
    }
}

/// Half-closes a socket's sending side: the peer reads EOF, our reading side stays open.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: the fd is borrowed and open; shutdown touches no memory.
    let ret = unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
    check(ret as libc::ssize_t).map(drop)
}

/// This process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid(2) takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}

/// Gives the calling thread the lowest scheduling priority (nice 19), for background work (slow
/// password hashes) that must never take a core from the workers. Linux nice values are per thread.
pub fn lower_this_threads_priority() -> io::Result<()> {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id touches no memory.
    let ret = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
    };
    check(ret as libc::ssize_t).map(drop)
}

/// Waits until `fd` is readable (or at EOF/hang-up) for at most `within`: `Ok(false)` when the time
/// ran out. For the blocking helper threads (a pipe from a child process), never for a worker.
pub fn wait_readable(fd: BorrowedFd<'_>, within: std::time::Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = within.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid, initialised pollfd whose fd is borrowed (open for the call); nfds is 1.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    check(n as libc::ssize_t).map(|n| n > 0)
}

/// Largest pipe an unprivileged process may ask for (`/proc/sys/fs/pipe-max-size`); read at start-up.
pub fn pipe_max_size() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// Types that own an open socket or pipe descriptor for as long as they live, and so may lend it
/// out as a [`BorrowedFd`] through [`fd_of`].
///
/// Sealed: only this module implements it, and only for types whose `as_raw_fd` names a descriptor
/// they own. (`RawFd` itself implements `AsRawFd`, so an `AsRawFd` bound alone would let safe code
/// borrow `-1` or a closed number.)
pub(crate) trait OwnsFd: sealed::Sealed + AsRawFd {}

mod sealed {
    pub trait Sealed {}
}

macro_rules! owns_fd {
    ($($t:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl OwnsFd for $t {}
    )*};
}

owns_fd!(
    monoio::net::TcpStream,
    monoio::net::TcpListener,
    std::net::TcpStream,
    std::net::TcpListener,
    OwnedFd,
);

/// Borrows the fd of a socket or pipe that owns one (monoio's sockets implement `AsRawFd` but not
/// `AsFd`).
pub(crate) fn fd_of<T: OwnsFd>(owner: &T) -> BorrowedFd<'_> {
    // SAFETY: `T: OwnsFd` is implemented (here, sealed) only for types that own an open descriptor
    // and keep it open for as long as they live; the returned borrow cannot outlive `&owner`, so
    // it never names a closed (or reused) fd.
    unsafe { BorrowedFd::borrow_raw(owner.as_raw_fd()) }
}

/// How `getaddrinfo(3)` failed.
#[derive(Debug)]
pub enum AddrInfoError {
    /// `EAI_NONAME` or `EAI_NODATA`: no such name, or no address for it.
    NoName,
    /// Anything else (a server failure, `EAI_AGAIN`, `EAI_SYSTEM`'s errno…).
    Failed(io::Error),
}

/// Whether a `getaddrinfo` return code means "no such name" (or "no address for it").
fn is_no_name(code: libc::c_int) -> bool {
    code == libc::EAI_NONAME || code == libc::EAI_NODATA
}

/// The addresses `getaddrinfo(3)` gives for `host` (stream sockets, any family, in its order,
/// duplicates included). Blocks: call it only off the workers.
pub fn getaddrinfo(host: &str) -> Result<Vec<IpAddr>, AddrInfoError> {
    let c_host = CString::new(host).map_err(|_| {
        AddrInfoError::Failed(io::Error::new(
            io::ErrorKind::InvalidInput,
            "host name contains a NUL byte",
        ))
    })?;
    // SAFETY: `addrinfo` is plain data; all zeroes (null pointers, zero ints) is "no hints".
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `c_host` is NUL-terminated and outlives the call; a null service is allowed with a
    // node; `hints` is a valid addrinfo for the call; `res` is a valid place for the result.
    let code = unsafe { libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if code != 0 {
        if is_no_name(code) {
            return Err(AddrInfoError::NoName);
        }
        if code == libc::EAI_SYSTEM {
            return Err(AddrInfoError::Failed(io::Error::last_os_error()));
        }
        // SAFETY: gai_strerror returns a pointer to a static NUL-terminated string for any code.
        let text = unsafe { CStr::from_ptr(libc::gai_strerror(code)) };
        return Err(AddrInfoError::Failed(io::Error::other(format!(
            "failed to lookup address information: {}",
            text.to_string_lossy()
        ))));
    }
    let mut out = Vec::new();
    let mut node = res;
    while !node.is_null() {
        // SAFETY: `node` is an element of the list getaddrinfo returned, not freed until below.
        let ai = unsafe { &*node };
        let len = ai.ai_addrlen as usize;
        if !ai.ai_addr.is_null() {
            if ai.ai_family == libc::AF_INET && len >= std::mem::size_of::<libc::sockaddr_in>() {
                // SAFETY: the family says `ai_addr` is a sockaddr_in, and `ai_addrlen` says it is
                // that long; getaddrinfo's allocation is suitably aligned.
                let sin = unsafe { &*ai.ai_addr.cast::<libc::sockaddr_in>() };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if ai.ai_family == libc::AF_INET6
                && len >= std::mem::size_of::<libc::sockaddr_in6>()
            {
                // SAFETY: as above, for a sockaddr_in6.
                let sin6 = unsafe { &*ai.ai_addr.cast::<libc::sockaddr_in6>() };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        node = ai.ai_next;
    }
    // SAFETY: `res` came from a successful getaddrinfo, is freed once, and no reference into it
    // (`ai`) is used after this.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn getaddrinfo_no_name_is_known_by_its_code() {
        for (code, no_name) in [
            (libc::EAI_NONAME, true),
            (libc::EAI_NODATA, true),
            (libc::EAI_AGAIN, false),
            (libc::EAI_FAIL, false),
            (libc::EAI_SYSTEM, false),
        ] {
            assert_eq!(is_no_name(code), no_name, "code {code}");
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "a test thread, not a worker")]
    fn getaddrinfo_reads_literal_addresses() {
        // Literals need no name service: this exercises the list walk, not the network.
        assert_eq!(
            getaddrinfo("127.0.0.1").unwrap(),
            [IpAddr::V4(Ipv4Addr::LOCALHOST)]
        );
        assert_eq!(
            getaddrinfo("::1").unwrap(),
            [IpAddr::V6(Ipv6Addr::LOCALHOST)]
        );
        assert!(matches!(
            getaddrinfo("a\0b"),
            Err(AddrInfoError::Failed(e)) if e.kind() == io::ErrorKind::InvalidInput
        ));
    }
}
