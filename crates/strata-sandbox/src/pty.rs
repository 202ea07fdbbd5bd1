//! Pseudo-terminals: a pty pair, window sizes, raw mode that restores itself, and SIGWINCH.
//!
//! Used by [`Sandbox::run_interactive`](crate::Sandbox::run_interactive) and by the debugger's
//! shell into a failed step. A container's terminal is a *console*, as runc's
//! `--console-socket`: the container opens the pair on its own devpts (so `tty` names its
//! `/dev/pts/0` and the slave belongs to the command's user) and sends the master back over a
//! unix socket ([`console_socket_pair`], [`send_console`], [`receive_console`]); the caller
//! sets the window size and acknowledges before the command starts, so the first `stty size`
//! already sees it.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, Termios, Winsize};

/// What can go wrong with a terminal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A terminal operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done, e.g. `"open /dev/ptmx"`.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Only one [`WinchWatcher`] may exist at a time (it owns the process-wide handler).
    #[error("a SIGWINCH watcher is already installed")]
    WinchBusy,
}

fn io_err(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error {
    move |e| Error::Io {
        op,
        source: e.into(),
    }
}

/// A terminal size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// A pty pair: the master stays with us, the slave becomes the container's stdio.
#[derive(Debug)]
pub struct Pty {
    /// The controlling side (read what the container prints, write what it reads).
    pub master: OwnedFd,
    /// The terminal side.
    pub slave: OwnedFd,
}

impl Pty {
    /// Opens a new pair on `/dev/ptmx` (pty(7)); both fds are close-on-exec.
    pub fn open() -> Result<Pty, Error> {
        let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
        let master = rustix::pty::openpt(flags).map_err(io_err("open /dev/ptmx"))?;
        rustix::pty::grantpt(&master).map_err(io_err("grantpt"))?;
        rustix::pty::unlockpt(&master).map_err(io_err("unlockpt"))?;
        // TIOCGPTPEER (Linux 4.13, ioctl_tty(2)) opens the slave from the master without a
        // path lookup, so it cannot race with, or be confused by, another devpts mount.
        let slave =
            rustix::pty::ioctl_tiocgptpeer(&master, flags).map_err(io_err("open pty slave"))?;
        Ok(Pty { master, slave })
    }
}

/// The two ends of a console socket: the caller keeps the first, the container gets the
/// second (both close-on-exec; [`Sandbox::spawn`](crate::Sandbox::spawn) hands it over).
pub fn console_socket_pair() -> Result<(OwnedFd, OwnedFd), Error> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(io_err("create console socket"))
}

/// In the container: sends `master` over the console `socket`, then waits for the caller's
/// acknowledgement (or its end: a gone caller is noticed by the lifeline anyway).
pub fn send_console(socket: &OwnedFd, master: &OwnedFd) -> Result<(), Error> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [master.as_fd()];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        socket,
        &[IoSlice::new(b"m")],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(io_err("send console"))?;
    let mut ack = [0u8; 1];
    rustix::io::read(socket, &mut ack).map_err(io_err("wait for the console's acknowledgement"))?;
    Ok(())
}

/// In the caller: the master sent by [`send_console`], or `None` when the container ended
/// before sending one (its setup failed: [`Container::wait`](crate::Container::wait) says why).
pub fn receive_console(socket: &OwnedFd) -> Result<Option<OwnedFd>, Error> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let received = loop {
        match rustix::net::recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other.map_err(io_err("receive console"))?,
        }
    };
    if received.bytes == 0 {
        return Ok(None);
    }
    let master = control.drain().find_map(|message| match message {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    Ok(master)
}

/// Tells the container that the console is set up (see [`send_console`]).
pub fn acknowledge_console(socket: &OwnedFd) -> Result<(), Error> {
    rustix::io::write(socket, b"k").map_err(io_err("acknowledge console"))?;
    Ok(())
}

/// The window size of terminal `fd` (`TIOCGWINSZ`).
pub fn window_size(fd: impl AsFd) -> Result<WindowSize, Error> {
    let ws = rustix::termios::tcgetwinsize(fd).map_err(io_err("get window size"))?;
    Ok(WindowSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Sets the window size of terminal `fd` (`TIOCSWINSZ`); the kernel sends SIGWINCH to the
/// terminal's foreground process group.
pub fn set_window_size(fd: impl AsFd, size: WindowSize) -> Result<(), Error> {
    let ws = Winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, ws).map_err(io_err("set window size"))
}

/// Puts a terminal in raw mode and restores the previous settings when dropped.
#[derive(Debug)]
pub struct RawModeGuard {
    fd: OwnedFd,
    original: Termios,
}

impl RawModeGuard {
    /// Switches `fd` to raw mode (no echo, no line editing, no signals from ^C: every byte
    /// goes to the other side), like cfmakeraw(3).
    pub fn new(fd: impl AsFd) -> Result<RawModeGuard, Error> {
        let fd = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| Error::Io {
                op: "dup terminal fd",
                source,
            })?;
        let original = rustix::termios::tcgetattr(&fd).map_err(io_err("get terminal mode"))?;
        let mut raw = original.clone();
        raw.make_raw();
        // TCSANOW, as docker's: input typed ahead is kept for the other side.
        rustix::termios::tcsetattr(&fd, OptionalActions::Now, &raw)
            .map_err(io_err("set raw mode"))?;
        Ok(RawModeGuard { fd, original })
    }
}

impl Drop for RawModeGuard {
    fn drop(&mut self) {
        // Nothing sensible to do if the terminal is gone.
        let _ = rustix::termios::tcsetattr(&self.fd, OptionalActions::Now, &self.original);
    }
}

/// The write end of the SIGWINCH self-pipe, for the signal handler (-1: none).
///
/// A process-wide global is unavoidable: a signal handler gets no context argument.
static WINCH_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_winch(_: libc::c_int) {
    let fd = WINCH_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // write(2) is async-signal-safe; the pipe is non-blocking, so a full pipe (a resize
        // already pending) just drops the byte.
        // SAFETY: fd is the pipe's write end, kept open while the handler is installed.
        unsafe {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
    }
}

/// Turns SIGWINCH into readability of [`WinchWatcher::fd`] (the self-pipe trick), and
/// restores the previous handler when dropped.
#[derive(Debug)]
pub struct WinchWatcher {
    read: OwnedFd,
    /// Kept open for the handler, which writes to it through [`WINCH_FD`].
    _write: OwnedFd,
    previous: nix::sys::signal::SigAction,
}

impl WinchWatcher {
    /// Installs the handler.
    pub fn install() -> Result<WinchWatcher, Error> {
        use rustix::pipe::PipeFlags;
        let (read, write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)
            .map_err(io_err("create SIGWINCH pipe"))?;
        use std::os::fd::AsRawFd;
        if WINCH_FD
            .compare_exchange(-1, write.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(Error::WinchBusy);
        }
        let action = nix::sys::signal::SigAction::new(
            nix::sys::signal::SigHandler::Handler(on_winch),
            nix::sys::signal::SaFlags::SA_RESTART,
            nix::sys::signal::SigSet::empty(),
        );
        // SAFETY: the handler only calls write(2) on a valid fd.
        match unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGWINCH, &action) } {
            Ok(previous) => Ok(WinchWatcher {
                read,
                _write: write,
                previous,
            }),
            Err(e) => {
                WINCH_FD.store(-1, Ordering::SeqCst);
                Err(Error::Io {
                    op: "install SIGWINCH handler",
                    source: io::Error::from_raw_os_error(e as i32),
                })
            }
        }
    }

    /// Readable after a SIGWINCH; call [`WinchWatcher::drain`] then.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Consumes pending notifications.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!(rustix::io::read(&self.read, &mut buf), Ok(n) if n > 0) {}
    }
}

impl Drop for WinchWatcher {
    fn drop(&mut self) {
        // SAFETY: restores the action that was installed before ours.
        let _ = unsafe {
            nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGWINCH, &self.previous)
        };
        WINCH_FD.store(-1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_size_round_trips_through_the_pair() {
        let pty = Pty::open().expect("pty");
        let size = WindowSize {
            rows: 33,
            cols: 111,
        };
        set_window_size(&pty.master, size).expect("set");
        assert_eq!(window_size(&pty.slave).expect("get"), size);
    }

    #[test]
    fn raw_mode_is_restored() {
        let pty = Pty::open().expect("pty");
        let before = rustix::termios::tcgetattr(&pty.slave).expect("attr");
        {
            let _raw = RawModeGuard::new(&pty.slave).expect("raw");
            let during = rustix::termios::tcgetattr(&pty.slave).expect("attr");
            assert!(
                !during
                    .local_modes
                    .contains(rustix::termios::LocalModes::ECHO)
            );
        }
        let after = rustix::termios::tcgetattr(&pty.slave).expect("attr");
        assert_eq!(before.local_modes, after.local_modes);
    }

    #[test]
    fn winch_wakes_the_pipe() {
        let watcher = WinchWatcher::install().expect("install");
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGWINCH).expect("raise");
        let mut buf = [0u8; 8];
        assert_eq!(rustix::io::read(watcher.fd(), &mut buf).expect("read"), 1);
        assert!(matches!(WinchWatcher::install(), Err(Error::WinchBusy)));
        drop(watcher);
        WinchWatcher::install().expect("again after drop");
    }
}
