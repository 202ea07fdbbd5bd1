//! strata's registry client: pull images into the local store and push them out, streaming
//! and verified, plus the shared stage cache in a registry repository (werf's `--repo`).
//!
//! # What it owns
//!
//! * [`Reference`] parsing with Docker's normalization (`debian` →
//!   `docker.io/library/debian:latest`).
//! * [`Client`]: the distribution-spec calls (manifests, blobs, uploads, cross-repository
//!   mounts, tag lists) with Basic and Bearer-token auth from the Docker config, bounded
//!   retries of transient failures, and [`login`].
//! * [`stages::StageRepo`]: publishing and finding stages tagged `<digest>-<unix ms>`.
//!
//! # What it deliberately does not do
//!
//! It does not decide what to pull or push, or when (the engine does), does not unpack layers,
//! and does not build manifests (it pushes what the store holds, optionally converting media
//! types between OCI and Docker v2). It keeps no state on disk besides the store's blobs and
//! the Docker config written by [`login`].
//!
//! # Streaming and trust
//!
//! A layer is never held in memory: pulls copy the response body through a 256 KiB buffer into
//! a store [`strata_store::Ingest`] that hashes while writing and commits only if the digest
//! matches; pushes stream the store file into the request body. Manifests, indexes and configs
//! are read with a 4 MiB limit ([`manifest::MAX_MANIFEST`]); no size sent by a registry is used
//! to allocate, only as a bound.
//!
//! # Example
//!
//! ```
//! use strata_registry::{Client, Options, Reference, stages::StageRepo};
//! use strata_store::Digest;
//!
//! let r: Reference = "debian".parse().unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/debian:latest");
//! let r: Reference = "127.0.0.1:5000/team/app:v1".parse().unwrap();
//! assert_eq!((r.registry.as_str(), r.repository.as_str()), ("127.0.0.1:5000", "team/app"));
//!
//! // Making a client contacts nothing.
//! let client = Client::new(Options::default()).unwrap();
//! let stages = StageRepo::new(client.clone(), &"127.0.0.1:5000/team/stages".parse().unwrap());
//! assert_eq!(stages.repository().tag, None);
//! let digest = Digest::of(b"stage inputs");
//! assert_eq!(StageRepo::tag_for(&digest, 1700000000000), format!("{}-1700000000000", digest.hex()));
//! ```
//!
//! Pulling and pushing (needs a registry):
//!
//! ```no_run
//! use strata_registry::{Client, ManifestFormat, Options, Reference};
//! use strata_store::LocalStore;
//!
//! let store = LocalStore::open("/var/lib/strata".as_ref())?;
//! let client = Client::new(Options::default())?;
//! let pulled = client.pull(&"127.0.0.1:5000/library/debian:bookworm".parse()?, &store)?;
//! let to: Reference = "127.0.0.1:5000/team/base:v1".parse()?;
//! let pushed = client.push(&store, &pulled.manifest, &to, ManifestFormat::Oci)?;
//! assert_eq!(pushed.uploaded, 0); // mounted from library/debian instead
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod auth;
pub mod client;
pub mod manifest;
pub mod oci;
pub mod reference;
pub mod stages;
pub mod tls;

pub use auth::{login, logout};
pub use client::{Client, Error, Options, Pulled, PushOptions, Pushed, Streamed};
pub use manifest::{ManifestFormat, Platform};
pub use reference::Reference;
