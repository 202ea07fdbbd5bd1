//! What every operation needs: the store and a way to start sandboxes.

use std::path::PathBuf;

use strata_sandbox::Sandbox;
use strata_store::LocalStore;

/// The store and the sandbox launcher.
pub struct Context {
    /// The local store.
    pub store: LocalStore,
    /// Starts build containers.
    pub sandbox: Sandbox,
    /// How to reach registries (plain-HTTP hosts, credentials).
    pub registry: strata_registry::Options,
    /// When builds collect garbage by themselves.
    pub gc: crate::ops::gc::GcPolicy,
}

impl Context {
    /// A registry client with this context's settings.
    pub fn registry_client(&self) -> anyhow::Result<strata_registry::Client> {
        Ok(strata_registry::Client::new(self.registry.clone())?)
    }

    /// Opens the store at `root` (see [`default_store_root`]).
    pub fn open(root: &std::path::Path, sandbox: Sandbox) -> anyhow::Result<Context> {
        let store = LocalStore::open(root)?;
        Ok(Context {
            store,
            sandbox,
            registry: strata_registry::Options::default(),
            gc: Default::default(),
        })
    }
}

/// The store used when neither `--store` nor `STRATA_STORE` names one:
/// `$XDG_DATA_HOME/strata`, else `/var/lib/strata` for root, else `~/.local/share/strata`
/// (also for an ordinary user inside strata's user namespace, where it is uid 0).
pub fn default_store_root() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("strata");
    }
    if rustix::process::geteuid().is_root() && !strata_sandbox::rootless::active() {
        return PathBuf::from("/var/lib/strata");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".local/share/strata")
}
