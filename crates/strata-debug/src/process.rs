//! Processes the monitor starts on a terminal (`shell`, `exec`), which the user can leave
//! running: `ps`, `attach`, `kill` (buildx's monitor, docker's detach keys).
//!
//! A process gets a pty of its own (the container's console, [`Sandbox::spawn_console`]).
//! A thread per process reads the pty's master: while the process is *attached* what it
//! prints goes to our stdout as it comes, while it is *detached* the last [`HELD`] bytes of
//! it are kept and printed on the next [`Process::attach`], so a process never blocks on a
//! full terminal while nobody watches. Input goes from our stdin (in raw mode) to the master
//! on the monitor's thread, which also started the container (the sandbox ties a container to
//! the thread that spawned it) and waits for it.
//!
//! [`DETACH_KEYS`] typed while attached detach: Ctrl-p is held back until the next key, and
//! goes to the process with it unless that is Ctrl-q (docker's `--detach-keys` default).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use strata_sandbox::pty::{self, RawModeGuard, WinchWatcher};
use strata_sandbox::{Container, ContainerSpec, ExitStatus, Sandbox};

use crate::Error;
use crate::scratch::Slot;

/// The keys that detach from a process, as `help` and messages name them.
pub const DETACH_KEYS: &str = "Ctrl-p Ctrl-q";

const CTRL_P: u8 = 0x10;
const CTRL_Q: u8 = 0x11;

/// How much of a detached process's output is kept for its next `attach`.
pub const HELD: usize = 64 * 1024;

/// How an attached process stopped having the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The user typed [`DETACH_KEYS`]: it runs on.
    Detached,
    /// It exited.
    Exited(ExitStatus),
}

/// What the reader thread and the attaching monitor share.
#[derive(Debug, Default)]
struct Output {
    /// Output goes to our stdout (else into `held`).
    attached: bool,
    /// Output while detached, the last [`HELD`] bytes.
    held: Vec<u8>,
    /// The pty's slave side is closed: the process tree is gone.
    closed: bool,
}

/// One process started from the monitor.
#[derive(Debug)]
pub(crate) struct Process {
    /// Its id in `ps`, from 1, never reused in a session.
    pub id: usize,
    /// Its argv, joined.
    pub command: String,
    /// Where it runs, e.g. `failed state`, `base state in the debugger image`.
    pub place: String,
    /// The session uppers it has mounted while it runs.
    pub slots: Vec<Slot>,
    container: Option<Container>,
    master: Arc<OwnedFd>,
    output: Arc<Mutex<Output>>,
    /// Readable once the reader saw the pty close.
    closed: OwnedFd,
    reader: Option<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `spec` on a console sized as our terminal, detached (its first output is held
    /// for the [`Process::attach`] that follows).
    pub fn start(
        sandbox: &Sandbox,
        spec: &ContainerSpec,
        id: usize,
        place: String,
        slots: Vec<Slot>,
    ) -> Result<Process, Error> {
        let command = spec.process.args.join(" ");
        let what = || format!("run {command} in the {place}");
        let sandbox_err = |source| Error::Sandbox {
            what: what(),
            source,
        };
        let size = pty::window_size(rustix::stdio::stdin()).ok();
        let (container, master) = sandbox.spawn_console(spec, size).map_err(sandbox_err)?;
        let Some(master) = master else {
            // Setup failed before the console existed: wait() says why.
            return Err(match container.wait() {
                Err(source) => sandbox_err(source),
                Ok(status) => Error::Sandbox {
                    what: what(),
                    source: strata_sandbox::Error::Setup(format!(
                        "the container ended ({}) before its console was up",
                        status.code()
                    )),
                },
            });
        };
        let (closed, closing) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| terminal("create the process's pipe", e.into()))?;
        let master = Arc::new(master);
        let output = Arc::new(Mutex::new(Output::default()));
        let reader = {
            let (master, output) = (Arc::clone(&master), Arc::clone(&output));
            std::thread::Builder::new()
                .name(format!("debug-process-{id}"))
                .spawn(move || read_output(&master, &output, closing))
                .map_err(|e| terminal("start the process's output reader", e))?
        };
        Ok(Process {
            id,
            command,
            place,
            slots,
            container: Some(container),
            master,
            output,
            closed,
            reader: Some(reader),
            status: None,
        })
    }

    fn output(&self) -> MutexGuard<'_, Output> {
        self.output.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether it still runs.
    pub fn running(&self) -> bool {
        self.status.is_none() && !self.output().closed
    }

    /// Its exit status once it ended (waits for the container then: its tree is gone).
    pub fn status(&mut self) -> Result<Option<ExitStatus>, Error> {
        if self.status.is_none() && self.output().closed {
            self.finish()?;
        }
        Ok(self.status)
    }

    /// Gives it the terminal: what it printed while detached, then its output as it comes
    /// and our input, the window sized as ours, until it exits or [`DETACH_KEYS`].
    pub fn attach(&mut self) -> Result<Ended, Error> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let stdin = rustix::stdio::stdin();
        let stdout = rustix::stdio::stdout();
        // The window follows ours: set now, and again whenever it differs, checked before
        // anything typed is passed on (so a command typed after a resize sees the new size).
        let mut size = None;
        let mut follow_size = || {
            let now = pty::window_size(stdin).ok();
            if now != size
                && let Some(now) = now
            {
                // Fails only once the process is gone, which the loop finds.
                let _ = pty::set_window_size(&*self.master, now);
                size = Some(now);
            }
        };
        follow_size();
        // SIGWINCH wakes the loop for a resize without input.
        let winch = WinchWatcher::install().map_err(pty_err)?;
        let raw = RawModeGuard::new(stdin).map_err(pty_err)?;
        {
            let mut output = self.output();
            write_all(stdout, &output.held).map_err(|e| terminal("write to terminal", e))?;
            output.held.clear();
            output.attached = true;
        }
        let mut keys = DetachKeys::default();
        let mut buf = [0u8; 4096];
        loop {
            let mut fds = [
                PollFd::new(self.closed.as_fd(), PollFlags::POLLIN),
                PollFd::new(winch.fd(), PollFlags::POLLIN),
                PollFd::new(stdin, PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::Error::EINTR) => {}
                Err(e) => return Err(terminal("poll terminal", e.into())),
            }
            let ready = |fd: &PollFd<'_>| {
                fd.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            let (ended, resized, typed) = (ready(&fds[0]), ready(&fds[1]), ready(&fds[2]));
            if ended {
                break;
            }
            if resized {
                winch.drain();
            }
            follow_size();
            if typed {
                let n = match rustix::io::read(stdin, &mut buf) {
                    Ok(n) => n,
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
                    Err(e) => return Err(terminal("read from terminal", e.into())),
                };
                let (forward, detach) = keys.feed(&buf[..n]);
                // A process that just ended takes no input; the loop finds it ended.
                let _ = write_all(self.master.as_fd(), &forward);
                // Our terminal gone (n == 0) leaves the process running, as detaching does.
                if detach || n == 0 {
                    self.output().attached = false;
                    return Ok(Ended::Detached);
                }
            }
        }
        drop(raw);
        let status = self.finish()?;
        Ok(Ended::Exited(status))
    }

    /// Ends it (SIGKILL to its tree) and returns how it ended.
    pub fn kill(&mut self) -> Result<ExitStatus, Error> {
        if let Some(container) = &self.container {
            container.kill().map_err(|source| Error::Sandbox {
                what: format!("kill process {} (`{}`)", self.id, self.command),
                source,
            })?;
        }
        self.finish()
    }

    /// Waits for the container and the reader thread; the status, kept.
    fn finish(&mut self) -> Result<ExitStatus, Error> {
        if let Some(container) = self.container.take() {
            let status = container.wait().map_err(|source| Error::Sandbox {
                what: format!("wait for process {} (`{}`)", self.id, self.command),
                source,
            });
            // The tree is gone, so the pty closed and the reader ends.
            if let Some(reader) = self.reader.take() {
                let _ = reader.join();
            }
            self.status = Some(status?);
        }
        self.status.ok_or_else(|| Error::Sandbox {
            what: format!("wait for process {} (`{}`)", self.id, self.command),
            source: strata_sandbox::Error::Setup("the container was already waited for".into()),
        })
    }
}

/// The reader thread: copies the master to our stdout or into the held output until the
/// process side closes, then makes `closing`'s pipe readable.
fn read_output(master: &OwnedFd, output: &Mutex<Output>, closing: OwnedFd) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match rustix::io::read(master, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
            // EIO: no slave fd is open any more, the process tree is gone.
            Err(_) => break,
        };
        let mut output = output.lock().unwrap_or_else(|e| e.into_inner());
        if output.attached {
            // A terminal that is gone loses the output; nothing else to do with it.
            let _ = write_all(rustix::stdio::stdout(), &buf[..n]);
        } else {
            output.held.extend_from_slice(&buf[..n]);
            let over = output.held.len().saturating_sub(HELD);
            output.held.drain(..over);
        }
    }
    output.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
    // Dropping the write end makes the read end readable (EOF).
    drop(closing);
}

/// Finds [`DETACH_KEYS`] in what is typed, across reads.
#[derive(Debug, Default)]
pub(crate) struct DetachKeys {
    /// A Ctrl-p was typed last and is held back.
    pending: bool,
}

impl DetachKeys {
    /// The bytes of `input` to pass on, and whether the detach keys were typed (what was
    /// typed after them is dropped).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut forward = Vec::with_capacity(input.len());
        for &byte in input {
            if std::mem::take(&mut self.pending) {
                if byte == CTRL_Q {
                    return (forward, true);
                }
                forward.push(CTRL_P);
            }
            if byte == CTRL_P {
                self.pending = true;
            } else {
                forward.push(byte);
            }
        }
        (forward, false)
    }
}

/// The processes of a session, in start order.
#[derive(Debug, Default)]
pub(crate) struct Processes {
    list: Vec<Process>,
    last_id: usize,
}

impl Processes {
    /// The next id.
    pub fn next_id(&mut self) -> usize {
        self.last_id += 1;
        self.last_id
    }

    /// Adds a started process; returns it.
    pub fn add(&mut self, process: Process) -> &mut Process {
        self.list.push(process);
        self.list.last_mut().expect("just pushed")
    }

    /// The processes, in start order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Process> {
        self.list.iter_mut()
    }

    /// Process `id`.
    pub fn get(&mut self, id: usize) -> Result<&mut Process, Error> {
        self.list
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or(Error::NoProcess(id))
    }

    /// Forgets process `id` (it ended).
    pub fn remove(&mut self, id: usize) {
        self.list.retain(|p| p.id != id);
    }

    /// A running process that has one of `slots` mounted, if any. One whose tree ended is
    /// waited for first: until its init helper has exited, its mount namespace (and with it
    /// the overlay on its uppers) may still be there.
    pub fn holding(&mut self, slots: &[Slot]) -> Option<&Process> {
        for process in &mut self.list {
            if !process.running() {
                // A failed wait shows in `ps`; the tree is gone either way.
                let _ = process.status();
            }
        }
        self.list
            .iter()
            .find(|p| p.running() && p.slots.iter().any(|s| slots.contains(s)))
    }

    /// Kills every process still running and forgets them all; returns `id (command)` of
    /// those it killed.
    pub fn end_all(&mut self) -> Result<Vec<String>, Error> {
        let mut ended = Vec::new();
        for mut process in std::mem::take(&mut self.list) {
            if process.running() {
                ended.push(format!("{} (`{}`)", process.id, process.command));
            }
            process.kill()?;
        }
        Ok(ended)
    }
}

fn terminal(op: &'static str, source: std::io::Error) -> Error {
    Error::Terminal { op, source }
}

fn pty_err(e: pty::Error) -> Error {
    Error::Sandbox {
        what: "give the process the terminal".into(),
        source: e.into(),
    }
}

fn write_all(fd: impl AsFd, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd.as_fd(), data) {
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_found_across_reads_and_a_lone_ctrl_p_goes_on() {
        let mut keys = DetachKeys::default();
        assert_eq!(keys.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(keys.feed(&[b'a', CTRL_P]), (b"a".to_vec(), false));
        assert_eq!(keys.feed(&[CTRL_Q, b'x']), (Vec::new(), true));
        let mut keys = DetachKeys::default();
        assert_eq!(keys.feed(&[CTRL_P, b'b']), (vec![CTRL_P, b'b'], false));
        assert_eq!(
            keys.feed(&[CTRL_P, CTRL_P, CTRL_Q]),
            (vec![CTRL_P], true),
            "the second Ctrl-p starts the keys"
        );
    }
}
