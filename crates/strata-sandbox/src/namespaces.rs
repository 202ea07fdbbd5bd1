//! Which namespaces a container gets, and entering them.

use crate::spec::Network;
use crate::sys::{CloneFlags, Syscall};

/// `unshare` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused the new namespaces.
    #[error("unshare {flags:?}: {source}")]
    Unshare {
        /// The namespaces asked for.
        flags: CloneFlags,
        /// The OS error (EPERM without CAP_SYS_ADMIN).
        source: std::io::Error,
    },
}

/// The namespaces for a container: mount, PID, UTS and IPC always; network when
/// [`Network::None`]. No user namespace: the builder runs as real root, so files written
/// into the upper dir get the ids the process used.
pub fn flags(network: Network) -> CloneFlags {
    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    flags
}

/// Moves the calling (single-threaded) process into new namespaces.
///
/// The new PID namespace applies to children forked afterwards only (unshare(2),
/// `CLONE_NEWPID`): the caller must fork to get the namespace's PID 1.
pub fn enter(sys: &dyn Syscall, network: Network) -> Result<(), Error> {
    let flags = flags(network);
    sys.unshare(flags)
        .map_err(|source| Error::Unshare { flags, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{Call, FakeSyscall};

    #[test]
    fn network_none_adds_a_net_namespace() {
        let fake = FakeSyscall::new();
        enter(&fake, Network::None).expect("enter");
        enter(&fake, Network::Host).expect("enter");
        let calls = fake.calls();
        assert!(matches!(calls[0], Call::Unshare(f) if f.contains(CloneFlags::CLONE_NEWNET)));
        assert!(
            matches!(calls[1], Call::Unshare(f) if !f.contains(CloneFlags::CLONE_NEWNET)
            && f.contains(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS))
        );
    }
}
