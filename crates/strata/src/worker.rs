//! The local worker: runs stages with the sandbox, turns their changes into layers and commits
//! them to the local store. It is the solver's [`Executor`].
//!
//! Building one stage:
//! 1. take the store lock of the stage digest, and re-check the cache (another strata process
//!    may have built it meanwhile);
//! 2. make sure the parent image's layers are unpacked as snapshots (the overlay lowers);
//! 3. run each step: `Run` in a fresh container on the parent's layers plus one upper dir,
//!    `Config` as a change to the image config;
//! 4. turn the upper dir into one layer blob (streaming, hashed while written), move the upper
//!    dir itself into the snapshots (no unpack needed later), write config and manifest;
//! 5. publish the stage record last: before it exists, nothing of the stage counts.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context as _;
use strata_digest::Digest;
use strata_layer::Compression;
use strata_plan::{DependencyValue, DigestInput, LateInputs, MountSource, Op, Run, RunShell};
use strata_progress::{Event, Sink, StageId, Stream};
use strata_sandbox::{
    ContainerSpec, Mount, MountKind, Network, ProcessSpec, Sandbox, Security, Stdio,
};
use strata_solver::{Built, ExecError, Executor, ResolvedBase, StageJob, StageState};
use strata_store::{LayerRecord, LocalStore, RecordedInput, Scratch, StageRecord, Store};

use crate::files::{self, FileWork};
use crate::git;
use crate::image::{self, StoredImage};
use crate::oci::ImageConfig;
use crate::toolbox::{self, shell_quote};

/// Lines of output kept to show when a command fails.
const OUTPUT_TAIL: usize = 20;
/// Where the per-run control dir (scripts, staged files, resolv.conf and hosts) is mounted in
/// the container, read-only: strata writes it before the container starts (and the rerun
/// script after it ended), so nothing the container plants there can redirect those writes.
const RUN_DIR: &str = "/.strata/run";
/// Where the per-run state dir is mounted, writable: the only thing strata reads back from a
/// container, the index of the running command (`step`), is written there.
const STATE_DIR: &str = "/.strata/state";
/// The most bytes of `step` strata reads: a command index.
const STEP_MAX: usize = 20;
/// Stage record metadata: bytes of the layer the stage itself added.
pub const META_LAYER_BYTES: &str = "layerBytes";
/// The PATH of images that set none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Settings of the local worker.
#[derive(Clone, Debug, Default)]
pub struct WorkerOptions {
    /// Layer compression.
    pub compression: Compression,
    /// Network of build containers.
    pub network: Network,
    /// Registries: base images to pull, the shared stage repository.
    pub remote: Option<crate::remote::RemoteOptions>,
    /// Secrets by id (`--secret id=ID,src=PATH`), for `RUN --mount=type=secret`.
    pub secrets: Vec<(String, PathBuf)>,
    /// The `security.insecure` entitlement: runs marked insecure (`RUN --security=insecure`)
    /// get all capabilities and no seccomp; without it such a run is refused.
    pub allow_insecure: bool,
    /// Extra `/etc/hosts` entries (name, address) of build containers (docker's --add-host).
    pub add_hosts: Vec<(String, std::net::IpAddr)>,
}

/// Builds stages on this machine into the local store.
pub struct LocalWorker<'a> {
    store: &'a LocalStore,
    sandbox: &'a Sandbox,
    toolbox: PathBuf,
    options: WorkerOptions,
    failures: Mutex<HashMap<Digest, FailedRun>>,
    remote: Option<crate::remote::Remote>,
    tmp_dirs: crate::tmp_dirs::TmpDirs,
    /// The config's `project:`: a local tag another project built is not its base.
    project: Option<String>,
}

/// A failed run kept for the debugger: the exact container spec it ran with and its
/// directories (the broken upper among them), which live as long as this value.
pub struct FailedRun {
    /// The image and stage that failed.
    pub image: String,
    /// The stage.
    pub stage: String,
    /// The spec of the failed run: lowers are the state before the step, upper what it wrote.
    pub spec: ContainerSpec,
    /// Runs only the failing command again in that environment.
    pub rerun_args: Vec<String>,
    /// Runs the whole step again from its start.
    pub step_args: Vec<String>,
    /// The scratch dir holding the upper, work and control dirs; removed when dropped.
    pub scratch: Scratch,
}

impl<'a> LocalWorker<'a> {
    /// A worker on `store`, running containers with `sandbox`.
    pub fn new(
        store: &'a LocalStore,
        sandbox: &'a Sandbox,
        options: WorkerOptions,
    ) -> anyhow::Result<Self> {
        let toolbox = toolbox::ensure(store)?;
        let remote = options.remote.as_ref().map(crate::remote::Remote::new);
        Ok(LocalWorker {
            store,
            sandbox,
            toolbox,
            options,
            failures: Mutex::new(HashMap::new()),
            remote,
            tmp_dirs: Default::default(),
            project: None,
        })
    }

    /// Builds for the stapel config of `project` (werf's `project:`), see [`Executor::resolve_base`].
    pub fn set_project(&mut self, project: Option<String>) {
        self.project = project;
    }

    fn build_stage(&self, job: &StageJob<'_>, progress: &dyn Sink) -> Result<Built, ExecError> {
        let id = StageId {
            image: job.image_name.to_string(),
            stage: job.stage.name.clone(),
        };
        let _lock = self
            .store
            .lock(&format!("stage-{}", job.digest.hex()), &mut |what| {
                progress.event(Event::Waiting {
                    what: format!("{}/{}: {what}", id.image, id.stage),
                })
            })
            .map_err(other)?;
        if let Some(state) = self.lookup(job.image, &job.digest)? {
            return Ok(Built {
                state,
                adopted: true,
                commit_millis: 0,
            });
        }
        let started = Instant::now();
        self.ensure_inputs_local(job)?;
        let parent = match &job.parent_manifest {
            Some(d) => Some(StoredImage::load(self.store, d).map_err(other)?),
            None => None,
        };
        let mut config = parent
            .as_ref()
            .map(|p| p.config.clone())
            .unwrap_or_else(ImageConfig::empty);
        let mut layers = parent
            .as_ref()
            .map(|p| p.layer_records())
            .unwrap_or_default();
        let parent_layers = layers.len();
        let parent_record = match &job.parent_stage {
            Some(d) => self.store.stage(d).map_err(other)?,
            None => None,
        };
        let mut commits = parent_record
            .map(|r| git::recorded_commits(&r.meta))
            .unwrap_or_default();
        let mut new_layer_bytes = 0;
        let mut commit_millis = 0;
        // File work waits in a prepared run and lands in the upper dir of the next command step
        // (or of its own layer when no command follows).
        let mut pending: Option<PendingRun> = None;
        // One past the last step: file work not followed by a command runs on its own.
        for index in 0..=job.stage.steps.len() {
            let (step, run) = match job.stage.steps.get(index).map(|s| &s.op) {
                Some(Op::Config(change)) => {
                    config.apply(change);
                    continue;
                }
                Some(Op::Run(run)) => (index, Some(run)),
                None if pending.is_none() => break,
                None => (index - 1, None),
                Some(op) => {
                    let lowers = self.lowers(&layers)?;
                    let p = match &mut pending {
                        Some(p) => p,
                        None => pending.insert(self.pending_run().map_err(other)?),
                    };
                    let name = format!("files-{index}.tar");
                    let (dir, inside) = (&p.dirs.control, RUN_DIR);
                    let work = match op {
                        Op::GitArchive { mapping } => {
                            let m = &job.image.git[*mapping];
                            commits.insert(git::commit_key(*mapping), m.commit.clone());
                            git::archive(m, &lowers, dir, &name).map(|w| vec![w])
                        }
                        Op::GitPatch { mapping } => {
                            let m = &job.image.git[*mapping];
                            let from = commits.insert(git::commit_key(*mapping), m.commit.clone());
                            match from {
                                Some(from) if from != m.commit => {
                                    git::patch(m, &from, &lowers, dir, &name)
                                }
                                _ => Ok(Vec::new()),
                            }
                        }
                        Op::Import(import) => crate::import::write(
                            self.store,
                            import,
                            job.dependencies,
                            &lowers,
                            dir,
                            &name,
                        )
                        .map(|w| vec![w]),
                        Op::CopyFiles(copy) => {
                            crate::copy::write(copy, &lowers, dir, inside, &name).map(|w| vec![w])
                        }
                        Op::MakeDir { path, owner: None } => {
                            Ok(vec![FileWork::MakeDir(path.clone())])
                        }
                        Op::MakeDir {
                            path,
                            owner: Some(user),
                        } => {
                            crate::workdir::write(path, user, &lowers, dir, &name).map(|w| vec![w])
                        }
                        Op::Run(_) | Op::Config(_) => unreachable!("matched by the outer arm"),
                    };
                    match work {
                        Ok(work) => p.prelude.extend(work.into_iter().map(|w| (index, w))),
                        Err(e) => {
                            if let Some(prepared) = pending.take() {
                                self.keep_step_failure(job, prepared, lowers, &config);
                            }
                            return Err(ExecError::Step {
                                step: index,
                                message: format!("{e:#}"),
                            });
                        }
                    }
                    continue;
                }
            };
            let lowers = self.lowers(&layers)?;
            let prepared = match pending.take() {
                Some(p) => self.apply_files(job, p, lowers.clone(), &config)?,
                None => self.pending_run().map_err(other)?,
            };
            let (layer, millis) = match run {
                Some(run) => {
                    self.run_step(job, &id, step, run, prepared, &config, &lowers, progress)?
                }
                // Nothing left for a shell: no container at all.
                None if files::script(prepared.prelude.iter().map(|(_, w)| w)).is_empty() => {
                    self.commit_upper(&prepared.dirs)?
                }
                // `ADD`'s archives: the toolbox's tar unpacks them in a container of their own.
                None => self.run_step(
                    job,
                    &id,
                    step,
                    &files_only_run(),
                    prepared,
                    &config,
                    &lowers,
                    progress,
                )?,
            };
            new_layer_bytes += add_layer(layer, &mut config, &mut layers);
            commit_millis += millis;
        }
        let history = &job.stage.options;
        image::push_empty_history(&mut config, &history.history_before);
        let created_by = match history.created_by.as_str() {
            "" => format!("strata: {}/{}", id.image, id.stage),
            text => text.to_string(),
        };
        // A stage with no text and no layer (a Dockerfile's `from`) adds no history entry:
        // BuildKit's image history is the base's and one entry per instruction.
        if layers.len() > parent_layers || !history.created_by.is_empty() {
            image::push_stage_history(
                &mut config,
                &layers,
                parent_layers,
                &created_by,
                &format!("stage {}", job.digest.hex()),
            );
        }
        image::push_empty_history(&mut config, &history.history_after);
        let base_reference = match (&job.image.base, job.parent_stage) {
            (strata_plan::Base::Reference { reference, .. }, None) => Some(reference.as_str()),
            _ => None,
        };
        let annotations = image::base_annotations(parent.as_ref(), base_reference);
        let written =
            image::write_image(self.store, &config, &layers, &annotations).map_err(other)?;
        let record = StageRecord {
            digest: job.digest,
            parent: job.parent_stage,
            manifest: written.manifest,
            config: written.config,
            layers,
            inputs: job
                .inputs
                .iter()
                .map(|i| RecordedInput {
                    name: i.name(),
                    value: i.value(),
                })
                .collect(),
            image: id.image.clone(),
            stage: id.stage.clone(),
            created_unix: crate::unix_now(),
            build_millis: started.elapsed().as_millis() as u64,
            meta: {
                let mut meta = commits;
                meta.insert(META_LAYER_BYTES.to_string(), new_layer_bytes.to_string());
                meta
            },
        };
        // Blobs and snapshots are durable before the record that makes them count.
        self.store.sync().map_err(other)?;
        let (record, adopted) =
            crate::reuse::publish(self.store, self.remote.as_ref(), record, job.image)
                .map_err(other)?;
        let state = StageState {
            digest: record.digest,
            manifest: record.manifest,
            layer_bytes: new_layer_bytes,
        };
        Ok(Built {
            state,
            adopted,
            commit_millis,
        })
    }

    fn lowers(&self, layers: &[LayerRecord]) -> Result<Vec<PathBuf>, ExecError> {
        image::lowers(self.store, layers).map_err(other)
    }

    /// Runs one `Run` step; returns the layer it made, if it changed anything, and the
    /// milliseconds spent committing it.
    #[allow(clippy::too_many_arguments)]
    fn run_step(
        &self,
        job: &StageJob<'_>,
        id: &StageId,
        step: usize,
        run: &Run,
        prepared: PendingRun,
        config: &ImageConfig,
        lowers: &[PathBuf],
        progress: &dyn Sink,
    ) -> Result<(Option<LayerRecord>, u64), ExecError> {
        let PendingRun {
            scratch,
            dirs,
            prelude,
        } = prepared;
        let toolbox = run.shell == RunShell::ToolboxScript;
        let mut env = self.stage_env(job, config, toolbox).map_err(other)?;
        env.extend(run.env.iter().map(|(k, v)| format!("{k}={v}")));
        for m in &run.mounts {
            if let MountSource::Secret {
                id, env: Some(var), ..
            } = &m.source
                && let Some((_, path)) = self.options.secrets.iter().find(|(s, _)| s == id)
            {
                let value = fs::read_to_string(path)
                    .map_err(|e| other(format!("read secret {id}: {e}")))?;
                env.push(format!("{var}={}", value.trim_end_matches('\n')));
            }
        }
        let prelude = files::script(prelude.iter().map(|(_, w)| w));
        let (args, env) = step_command(run, env, &dirs.control, "", &prelude).map_err(other)?;
        let spec = self
            .container_spec(lowers.to_vec(), &dirs, args, env, Some(run), config, job)
            .map_err(other)?;
        if spec.security == Security::Insecure {
            // Named in the output, as BuildKit does: this step is not confined.
            let command = run.commands.first().map_or("", |c| c.text.as_str());
            progress.event(Event::Log {
                id: id.clone(),
                stream: Stream::Info,
                line: format!(
                    "security.insecure: all capabilities and no seccomp for `{}`",
                    command.lines().next().unwrap_or_default()
                ),
            });
        }
        let mut container = self.sandbox.spawn(&spec, Stdio::Piped).map_err(other)?;
        let mut tail = VecDeque::with_capacity(OUTPUT_TAIL);
        if let Some(output) = container.take_output() {
            let mut reader = BufReader::new(output);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line =
                    String::from_utf8_lossy(buf.strip_suffix(b"\n").unwrap_or(&buf)).into_owned();
                if tail.len() == OUTPUT_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
                progress.event(Event::Log {
                    id: id.clone(),
                    stream: Stream::Stdout,
                    line,
                });
            }
        }
        let status = container.wait().map_err(other)?;
        if !status.success() {
            // Written by the container: read without following links, bounded, and checked.
            let command = crate::beneath::read(&dirs.state, "step", STEP_MAX)
                .ok()
                .flatten()
                .and_then(|s| String::from_utf8(s).ok())
                .and_then(|s| s.trim().parse().ok())
                .filter(|c: &usize| *c < run.commands.len())
                .or((run.commands.len() == 1).then_some(0));
            let rerun_args = match (command, &run.shell) {
                (Some(c), RunShell::ToolboxScript) => {
                    let only = Run {
                        commands: vec![run.commands[c].clone()],
                        ..run.clone()
                    };
                    let env = self.stage_env(job, config, true).map_err(other)?;
                    step_command(&only, env, &dirs.control, RERUN, "")
                        .map_err(other)?
                        .0
                }
                _ => spec.process.args.clone(),
            };
            // The script set the locale itself; a shell in this state gets it from the spec.
            let mut spec = spec;
            spec.process.env = self.stage_env(job, config, true).map_err(other)?;
            let failed = FailedRun {
                image: job.image_name.to_string(),
                stage: job.stage.name.clone(),
                step_args: spec.process.args.clone(),
                rerun_args,
                spec,
                scratch,
            };
            self.failures
                .lock()
                .expect("no thread panics holding the failure map")
                .insert(job.digest, failed);
            return Err(ExecError::CommandFailed {
                step,
                command,
                exit_code: status.code(),
                output_tail: tail.into(),
            });
        }
        self.commit_upper(&dirs)
    }

    /// Applies the file work of `prepared` (all of it but `ADD`'s archive scripts) from this
    /// process into its upper dir, on top of `lowers`; a failure is kept for introspection and
    /// names the step whose work failed.
    fn apply_files(
        &self,
        job: &StageJob<'_>,
        prepared: PendingRun,
        lowers: Vec<PathBuf>,
        config: &ImageConfig,
    ) -> Result<PendingRun, ExecError> {
        let root = strata_sandbox::files::Root {
            lowers: lowers.clone(),
            upper: prepared.dirs.upper.clone(),
            work: prepared.dirs.work.clone(),
            scratch: prepared.dirs.sandbox.clone(),
        };
        match files::apply(&prepared.prelude, &prepared.dirs.control, &root) {
            Ok(()) => Ok(prepared),
            Err((step, e)) => {
                self.keep_step_failure(job, prepared, lowers, config);
                Err(match step {
                    Some(step) => ExecError::Step {
                        step,
                        message: format!("{e:#}"),
                    },
                    None => other(format!("{e:#}")),
                })
            }
        }
    }

    /// Turns what a step wrote into `dirs.upper` into a layer (none if it wrote nothing);
    /// returns it and the milliseconds spent.
    fn commit_upper(&self, dirs: &RunDirs) -> Result<(Option<LayerRecord>, u64), ExecError> {
        let commit_started = Instant::now();
        if strata_layer::is_empty_dir(&dirs.upper).map_err(other)? {
            return Ok((None, 0));
        }
        let mut ingest = self.store.ingest().map_err(other)?;
        // The step's writes start going to disk while the layer is made from them (the commits
        // below wait for them anyway), so the disk and the CPU work overlap.
        let (written, flushed) = std::thread::scope(|scope| {
            let flush = scope.spawn(|| self.store.sync());
            let written =
                strata_layer::write_layer(&dirs.upper, self.options.compression, &mut ingest);
            let flushed = flush
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (written, flushed)
        });
        let stats = written.map_err(other)?;
        flushed.map_err(other)?;
        let size = ingest.written();
        let digest = ingest.commit(None).map_err(other)?;
        self.store
            .commit_snapshot(&dirs.upper, &stats.diff_id)
            .map_err(other)?;
        let layer = LayerRecord {
            digest,
            diff_id: stats.diff_id,
            size,
            media_type: self.options.compression.media_type().to_string(),
            urls: Vec::new(),
        };
        Ok((Some(layer), commit_started.elapsed().as_millis() as u64))
    }

    /// The values of the stage's `dependencies` variables.
    fn dependency_values(&self, job: &StageJob<'_>) -> anyhow::Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for dep in &job.stage.options.dependency_env {
            let state = job
                .dependencies
                .iter()
                .find(|(i, _)| *i == dep.image)
                .map(|(_, s)| s)
                .context("a dependency image was not built before this one")?;
            let (repo, tag) = dep
                .reference
                .rsplit_once(':')
                .unwrap_or((&dep.reference, "latest"));
            let value = match dep.value {
                DependencyValue::ImageName => dep.reference.clone(),
                DependencyValue::ImageRepo => repo.to_string(),
                DependencyValue::ImageTag => tag.to_string(),
                DependencyValue::ImageDigest => state.manifest.to_string(),
                DependencyValue::ImageId => StoredImage::load(self.store, &state.manifest)?
                    .manifest
                    .config
                    .digest
                    .to_string(),
            };
            out.push((dep.name.clone(), value));
        }
        Ok(out)
    }

    /// The environment of the stage's build containers (see [`build_env`]): with the toolbox
    /// for stage scripts and shells, without for a Dockerfile's `RUN`.
    fn stage_env(
        &self,
        job: &StageJob<'_>,
        config: &ImageConfig,
        toolbox: bool,
    ) -> anyhow::Result<Vec<String>> {
        let mut extra = job.stage.options.service_env.clone();
        extra.extend(self.dependency_values(job)?);
        Ok(build_env(config, &extra, toolbox))
    }

    /// Makes an image this build refers to available in the local store (a stage found in the
    /// stage repository is pulled on first need).
    pub fn ensure_local(&self, manifest: &Digest) -> anyhow::Result<()> {
        match &self.remote {
            Some(remote) => remote.ensure_local(self.store, manifest),
            None => Ok(()),
        }
    }

    /// The parent and the dependencies of a job, available locally.
    fn ensure_inputs_local(&self, job: &StageJob<'_>) -> Result<(), ExecError> {
        for manifest in job
            .parent_manifest
            .iter()
            .chain(job.dependencies.iter().map(|(_, s)| &s.manifest))
        {
            self.ensure_local(manifest).map_err(other)?;
        }
        Ok(())
    }

    /// A fresh scratch dir with the dirs of one container run.
    fn pending_run(&self) -> anyhow::Result<PendingRun> {
        let scratch = self.store.scratch("run")?;
        let dirs = RunDirs::create(scratch.path())?;
        Ok(PendingRun {
            scratch,
            dirs,
            prelude: Vec::new(),
        })
    }

    /// The container spec of a step or of a look inside a state: lowers, the run dirs, the
    /// command and environment, user and working directory (the step's, else the config's).
    #[allow(clippy::too_many_arguments)]
    fn container_spec(
        &self,
        lowers: Vec<PathBuf>,
        dirs: &RunDirs,
        args: Vec<String>,
        env: Vec<String>,
        run: Option<&Run>,
        config: &ImageConfig,
        job: &StageJob<'_>,
    ) -> anyhow::Result<ContainerSpec> {
        let mut mounts = self.standard_mounts(dirs)?;
        let step_mounts = run.map(|r| r.mounts.as_slice()).unwrap_or_default();
        for (i, m) in job
            .stage
            .options
            .mounts
            .iter()
            .chain(step_mounts)
            .enumerate()
        {
            let dir = |name: &str| -> anyhow::Result<PathBuf> {
                let d = dirs.mounts.join(format!("{name}-{i}"));
                fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
                Ok(d)
            };
            let (source, kind) = match &m.source {
                MountSource::TmpDir => (
                    self.tmp_dirs.dir(self.store, job.image_name)?,
                    MountKind::Bind { readonly: false },
                ),
                MountSource::BuildDir | MountSource::Cache { .. } => {
                    // Kept between builds: per image and target path for werf's build_dir,
                    // per id for a Dockerfile's cache mounts.
                    let key = match &m.source {
                        MountSource::Cache { id } => format!("cache\0{id}"),
                        _ => format!("{}\0{}", job.image_name, m.to),
                    };
                    let d = self
                        .store
                        .root()
                        .join("build_dir")
                        .join(strata_digest::Digest::of(key.as_bytes()).short(16));
                    fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
                    (d, MountKind::Bind { readonly: false })
                }
                MountSource::Host(path) => {
                    if !path.exists() {
                        anyhow::bail!(
                            "mount fromPath {} does not exist on this machine",
                            path.display()
                        );
                    }
                    (path.clone(), MountKind::Bind { readonly: false })
                }
                MountSource::Tmpfs => (PathBuf::new(), MountKind::Tmpfs),
                MountSource::Secret { id, required, .. } => {
                    match self.options.secrets.iter().find(|(s, _)| s == id) {
                        // A secret read into a variable (`env=`) with no target mounts nothing.
                        Some(_) if m.to.is_empty() => continue,
                        Some((_, path)) => (path.clone(), MountKind::Bind { readonly: true }),
                        None if *required => anyhow::bail!(
                            "the secret `{id}` is required: pass it with --secret id={id},src=FILE"
                        ),
                        None => continue,
                    }
                }
                MountSource::Bind {
                    image: None, path, ..
                } if !reaches_without_links(m.context.as_deref(), path)? => {
                    anyhow::bail!(
                        "the bind mount's source {path} changed since the build was planned: a link is now in its way; build again"
                    )
                }
                MountSource::Bind {
                    image: None,
                    path,
                    readwrite: false,
                    hide,
                } if hide.is_empty() => (PathBuf::from(path), MountKind::Bind { readonly: true }),
                MountSource::Bind {
                    image,
                    path,
                    hide,
                    readwrite,
                } => {
                    // Seen through an overlay with a throwaway upper: the step may write, and
                    // neither the context nor the image changes.
                    let lowers = match image {
                        // A layer of whiteouts on top hides what .dockerignore excludes.
                        None => vec![whiteouts(&dir("hide")?, hide)?, PathBuf::from(path)],
                        Some(index) => {
                            let state = job
                                .dependencies
                                .iter()
                                .find(|(i, _)| i == index)
                                .map(|(_, s)| s)
                                .context("a bind mount's image was not built before this step")?;
                            self.ensure_local(&state.manifest)?;
                            let layers = StoredImage::load(self.store, &state.manifest)?
                                .lowers(self.store)?;
                            // Resolved inside that image, as if it were `/`: a link of the
                            // image (`/data -> /etc`) never reaches the host's files.
                            match strata_debug::lookup::find(&layers, path)
                                .with_context(|| format!("look up {path} in the mount's image"))?
                            {
                                Some(strata_debug::lookup::Found::Dir(dirs)) => dirs,
                                Some(strata_debug::lookup::Found::Other { host, meta })
                                    if meta.is_file() && !*readwrite =>
                                {
                                    vec![host]
                                }
                                _ => anyhow::bail!(
                                    "the bind mount's source {path} is not a directory or file of its image"
                                ),
                            }
                        }
                    };
                    // Read-only unless `rw`: then writes go to a throwaway upper.
                    let (upper, work) = if *readwrite {
                        (dir("bind-upper")?, dir("bind-work")?)
                    } else {
                        (PathBuf::new(), PathBuf::new())
                    };
                    match (&lowers[..], readwrite) {
                        // overlayfs needs two layers when it has no upper: bind the one there is.
                        ([one], false) => (one.clone(), MountKind::Bind { readonly: true }),
                        _ => (
                            PathBuf::new(),
                            MountKind::Overlay {
                                lowers,
                                upper,
                                work,
                            },
                        ),
                    }
                }
            };
            mounts.push(Mount {
                target: m.to.clone(),
                source,
                kind,
                // A context source is opened beneath the context by the sandbox and mounted
                // from that fd: the check above cannot keep a link from being swapped in
                // before the mount.
                beneath: match &m.source {
                    MountSource::Bind { image: None, .. } => m.context.clone(),
                    _ => None,
                },
            });
        }
        Ok(ContainerSpec {
            lowers,
            upper: dirs.upper.clone(),
            work: dirs.work.clone(),
            scratch: dirs.sandbox.clone(),
            process: ProcessSpec {
                args,
                env,
                cwd: run
                    .and_then(|r| r.workdir.clone())
                    .unwrap_or_else(|| non_empty_or(&config.config.working_dir, "/")),
                user: run
                    .and_then(|r| r.user.clone())
                    .unwrap_or_else(|| config.config.user.clone()),
                terminal: false,
            },
            hostname: format!("strata-{}", job.digest.short(12)),
            mounts,
            network: if run.is_some_and(|r| r.no_network) {
                Network::None
            } else {
                self.options.network
            },
            security: match run {
                Some(r) if r.insecure && !self.options.allow_insecure => anyhow::bail!(
                    "security.insecure is not allowed: grant it with `strata build --allow \
                     security.insecure`"
                ),
                Some(r) if r.insecure => Security::Insecure,
                _ => Security::Sandbox,
            },
        })
    }

    /// The failed run of `image`/`stage`, if it failed in this worker.
    pub fn take_failure(&self, image: &str, stage: &str) -> Option<FailedRun> {
        let mut failures = self
            .failures
            .lock()
            .expect("no thread panics holding the failure map");
        let digest = failures
            .iter()
            .find(|(_, f)| f.image == image && f.stage == stage)
            .map(|(d, _)| *d)?;
        failures.remove(&digest)
    }

    /// The container spec of the failed run of the stage with this digest.
    pub fn failed_spec(&self, digest: &Digest) -> Option<ContainerSpec> {
        let failures = self
            .failures
            .lock()
            .expect("no thread panics holding the failure map");
        failures.get(digest).map(|f| f.spec.clone())
    }

    /// Keeps the state of a step that failed before any command ran (git work): a shell there
    /// sees the files as they were when the step started.
    fn keep_step_failure(
        &self,
        job: &StageJob<'_>,
        prepared: PendingRun,
        lowers: Vec<PathBuf>,
        config: &ImageConfig,
    ) {
        let env = self
            .stage_env(job, config, true)
            .unwrap_or_else(|_| build_env(config, &job.stage.options.service_env, true));
        let Ok(spec) =
            self.container_spec(lowers, &prepared.dirs, Vec::new(), env, None, config, job)
        else {
            return;
        };
        let failed = FailedRun {
            image: job.image_name.to_string(),
            stage: job.stage.name.clone(),
            spec,
            rerun_args: Vec::new(),
            step_args: Vec::new(),
            scratch: prepared.scratch,
        };
        self.failures
            .lock()
            .expect("no thread panics holding the failure map")
            .insert(job.digest, failed);
    }

    /// A container spec to look inside `manifest` (a stage's result, or with the parent's
    /// manifest the state before a stage) in the environment the stage's steps run in.
    /// `scratch` receives the container's own dirs; its upper is thrown away with it.
    pub fn state_spec(
        &self,
        job: &StageJob<'_>,
        manifest: Option<&Digest>,
        args: Vec<String>,
        scratch: &Path,
    ) -> anyhow::Result<ContainerSpec> {
        if let Some(d) = manifest {
            self.ensure_local(d)?;
        }
        let image = match manifest {
            Some(d) => Some(StoredImage::load(self.store, d)?),
            None => None,
        };
        let config = image
            .as_ref()
            .map(|i| i.config.clone())
            .unwrap_or_else(ImageConfig::empty);
        let lowers = match &image {
            Some(i) => i.lowers(self.store)?,
            None => Vec::new(),
        };
        let run = job.stage.steps.iter().find_map(|s| match &s.op {
            Op::Run(run) => Some(run),
            _ => None,
        });
        let dirs = RunDirs::create(scratch)?;
        let env = self.stage_env(job, &config, true)?;
        self.container_spec(lowers, &dirs, args, env, run, &config, job)
    }

    /// The mounts every build container gets: toolbox, control dir, resolv.conf and hosts.
    fn standard_mounts(&self, dirs: &RunDirs) -> anyhow::Result<Vec<Mount>> {
        let mut mounts = vec![
            Mount {
                target: toolbox::MOUNT_POINT.into(),
                source: self.toolbox.clone(),
                kind: MountKind::Bind { readonly: true },
                beneath: None,
            },
            // Read-only: strata writes it before the run; the sandbox mounts a read-only
            // directory as a read-only overlay, so the mount table names no store path.
            Mount {
                target: RUN_DIR.into(),
                source: dirs.control.clone(),
                kind: MountKind::Bind { readonly: true },
                beneath: None,
            },
            // The state dir as an overlay whose upper is the dir: the step's writes land in it
            // as through a bind, and the container's mount table shows a short layer name
            // instead of the store path a bind's root would show.
            Mount {
                target: STATE_DIR.into(),
                source: PathBuf::new(),
                kind: MountKind::Overlay {
                    lowers: vec![dirs.empty.clone()],
                    upper: dirs.state.clone(),
                    work: dirs.state_work.clone(),
                },
                beneath: None,
            },
        ];
        mounts.extend(host_files(&dirs.control)?);
        if !self.options.add_hosts.is_empty() {
            // Copied into the container when it starts: after the host's entries, as docker.
            let hosts = dirs.control.join("hosts");
            let mut file = fs::OpenOptions::new()
                .append(true)
                .open(&hosts)
                .with_context(|| format!("open {}", hosts.display()))?;
            for (name, ip) in &self.options.add_hosts {
                writeln!(file, "{ip}\t{name}")
                    .with_context(|| format!("write {}", hosts.display()))?;
            }
        }
        Ok(mounts)
    }
}

impl Executor for LocalWorker<'_> {
    fn resolve_base(&self, reference: &str) -> Result<ResolvedBase, ExecError> {
        let normalized = image::normalize_reference(reference);
        let other_project =
            crate::reuse::other_project(self.store, reference, self.project.as_deref())
                .map_err(other)?;
        if other_project.is_none()
            && let Some(manifest) = image::resolve(self.store, reference).map_err(other)?
        {
            return Ok(ResolvedBase {
                reference: normalized,
                manifest,
            });
        }
        let mine = if other_project.is_some() {
            " for this project"
        } else {
            ""
        };
        let hint = match &other_project {
            Some(p) => format!(
                "the local `{normalized}` is project `{p}`'s image, which another project's \
                 `from:` never names (werf keeps projects apart); name an image of this config, \
                 or a registry's"
            ),
            None => {
                format!("or import a root file system with `strata import ROOTFS.tar {normalized}`")
            }
        };
        match &self.remote {
            Some(remote) => match remote.pull_base(self.store, reference, &normalized) {
                Ok(manifest) => Ok(ResolvedBase {
                    reference: normalized,
                    manifest,
                }),
                Err(e) => Err(ExecError::Other(format!(
                    "`{normalized}` is not in the local store{mine} and pulling it failed: {e:#}; check the reference and the registry, {hint}"
                ))),
            },
            None => Err(ExecError::Other(format!(
                "`{normalized}` is not in the local store{mine}; {hint}"
            ))),
        }
    }

    fn lookup(
        &self,
        image: &strata_plan::Image,
        digest: &Digest,
    ) -> Result<Option<StageState>, ExecError> {
        let record = match self.store.stage(digest).map_err(other)? {
            Some(r) => Some(r),
            None => match &self.remote {
                Some(remote) => remote.find(digest).map_err(other)?,
                None => None,
            },
        };
        let record = record.filter(|r| crate::reuse::suitable(r, image));
        Ok(record.map(|r| StageState {
            digest: r.digest,
            manifest: r.manifest,
            layer_bytes: r
                .meta
                .get(META_LAYER_BYTES)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }))
    }

    fn late_inputs(
        &self,
        job: &StageJob<'_>,
        kind: &LateInputs,
    ) -> Result<Option<Vec<DigestInput>>, ExecError> {
        if *kind == LateInputs::Imports {
            self.ensure_inputs_local(job)?;
            let mut inputs = Vec::new();
            for (index, step) in job.stage.steps.iter().enumerate() {
                if let Op::Import(import) = &step.op {
                    let sum = crate::import::checksum(self.store, import, job.dependencies)
                        .map_err(|e| ExecError::Step {
                            step: index,
                            message: format!("{e:#}"),
                        })?;
                    inputs.push(DigestInput::Param {
                        key: format!("import[{index}].files"),
                        value: sum.hex(),
                    });
                }
            }
            for (name, value) in self.dependency_values(job).map_err(other)? {
                inputs.push(DigestInput::Param {
                    key: format!("dependency.{name}"),
                    value,
                });
            }
            return Ok(Some(inputs));
        }
        let parent = match &job.parent_stage {
            Some(d) => self.store.stage(d).map_err(other)?,
            None => None,
        };
        // A parent built in this very build is at the mappings' commits: nothing to apply.
        let Some(parent) = parent else {
            return Ok(None);
        };
        let mut size = 0;
        let mut patches = Vec::new();
        for (i, mapping) in job.image.git.iter().enumerate() {
            let Some(from) = parent.meta.get(&git::commit_key(i)) else {
                continue;
            };
            if from == &mapping.commit {
                continue;
            }
            let changes = git::change_set(mapping, from).map_err(other)?;
            if changes.is_empty() {
                continue;
            }
            size += changes.patch_size;
            patches.push(DigestInput::Git {
                key: format!("git[{i}].patch"),
                value: changes.identity.hex(),
            });
        }
        Ok(match kind {
            LateInputs::GitCache if size >= git::GIT_CACHE_THRESHOLD => {
                Some(vec![DigestInput::Git {
                    key: "gitCache.sizeMiB".into(),
                    value: (size >> 20).to_string(),
                }])
            }
            LateInputs::GitCache => None,
            LateInputs::GitLatestPatch if patches.is_empty() => None,
            LateInputs::GitLatestPatch => Some(patches),
            LateInputs::Imports => unreachable!("answered above"),
        })
    }

    fn build(
        &self,
        job: &StageJob<'_>,
        progress: &dyn Sink,
        _cancel: &AtomicBool,
    ) -> Result<Built, ExecError> {
        self.build_stage(job, progress)
    }
}

/// Whether `path` (below `context`) is reached from `context` without following any link, as
/// the plan resolved it; true when the plan names no context. Only for a clear error before
/// the run: the sandbox opens the source the same way again and mounts from that fd
/// ([`Mount::beneath`]), which is what keeps a later swap out.
fn reaches_without_links(context: Option<&Path>, path: &str) -> anyhow::Result<bool> {
    let Some(context) = context else {
        return Ok(true);
    };
    let rel = Path::new(path)
        .strip_prefix(context)
        .with_context(|| format!("the bind mount's source {path} is not in the context"))?;
    match strata_sandbox::sys::open_beneath(context, rel) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EXDEV)) => Ok(false),
        Err(e) => Err(e).with_context(|| format!("the bind mount's source {path}")),
    }
}

/// Adds what the worker's options change about what a stage's commands can see to the
/// stages' digest inputs: a stage whose commands run without network (`--network none`) is
/// not the stage built with the host's network. The input is the one a Dockerfile's
/// `RUN --network=none` already has, so both ways of asking for no network share a stage;
/// the default (the host's network) adds nothing, so existing digests stay as they were.
pub fn key_options(plan: &mut strata_plan::Plan, options: &WorkerOptions) {
    if options.network != Network::None {
        return;
    }
    for stage in plan.images.iter_mut().flat_map(|i| i.stages.iter_mut()) {
        let runs = stage.steps.iter().any(|s| matches!(s.op, Op::Run(_)));
        let keyed = stage.inputs.iter().any(|i| i.name() == NETWORK_INPUT);
        if runs && !keyed {
            stage.inputs.push(DigestInput::Param {
                key: NETWORK_INPUT.into(),
                value: "none".into(),
            });
        }
    }
}

/// The digest input naming a stage's network when it is not the host's.
const NETWORK_INPUT: &str = "network";

/// A directory of overlay whiteouts (character devices 0/0) at `paths`, to put on top of a
/// lower layer so the merged view hides them.
fn whiteouts(dir: &Path, paths: &[String]) -> anyhow::Result<PathBuf> {
    for p in paths {
        let at = dir.join(p);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &at,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .with_context(|| format!("create a whiteout at {}", at.display()))?;
    }
    Ok(dir.to_path_buf())
}

/// The argv and environment that run a step's commands; writes the stage script into `sub`
/// (`""` or [`RERUN`]) of the control dir `control` when the step needs one.
fn step_command(
    run: &Run,
    env: Vec<String>,
    control: &Path,
    sub: &str,
    prelude: &str,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    if !prelude.is_empty() && run.shell != RunShell::ToolboxScript {
        anyhow::bail!("git work before a step is only supported for stage scripts");
    }
    Ok(match &run.shell {
        RunShell::ToolboxScript => {
            // The static bash cannot load locales the image lacks and warns when it starts
            // with LC_ALL set; the script sets the locale itself, with the warning silenced.
            let (locale, rest): (Vec<String>, Vec<String>) = env
                .into_iter()
                .partition(|e| e.starts_with("LANG=") || e.starts_with("LC_ALL="));
            let script = match sub {
                "" => "script.sh".to_string(),
                sub => format!("{sub}/script.sh"),
            };
            // The rerun script is written after the container ran: never through its links.
            crate::beneath::write(
                control,
                &script,
                stage_script(run, &locale, prelude).as_bytes(),
            )?;
            (
                vec![toolbox::BASH.to_string(), format!("{RUN_DIR}/{script}")],
                rest,
            )
        }
        RunShell::Argv(prefix) => {
            let mut a = prefix.clone();
            a.extend(run.commands.iter().map(|c| c.text.clone()));
            (a, env)
        }
        RunShell::Exec => {
            let text = run
                .commands
                .first()
                .map(|c| c.text.as_str())
                .unwrap_or("[]");
            let args = serde_json::from_str(text)
                .with_context(|| format!("exec form {text} is not a JSON array"))?;
            (args, env)
        }
    })
}

/// The run of file work not followed by a command whose script lines need a shell.
fn files_only_run() -> Run {
    Run {
        commands: Vec::new(),
        shell: RunShell::ToolboxScript,
        user: Some("0:0".into()),
        workdir: Some("/".into()),
        env: Vec::new(),
        mounts: Vec::new(),
        no_network: false,
        insecure: false,
    }
}

/// Adds a step's layer, if it made one, to the stage's layers and config; returns its size.
fn add_layer(
    layer: Option<LayerRecord>,
    config: &mut ImageConfig,
    layers: &mut Vec<LayerRecord>,
) -> u64 {
    let Some(layer) = layer else { return 0 };
    let size = layer.size;
    config.rootfs.diff_ids.push(layer.diff_id);
    layers.push(layer);
    size
}

/// A container run being prepared: its dirs, and the file work (git, imports, COPY) that goes
/// into its upper dir before the step's commands.
struct PendingRun {
    scratch: Scratch,
    dirs: RunDirs,
    /// File work with the index of the step it comes from.
    prelude: Vec<(usize, FileWork)>,
}

/// Where, inside the control dir, the script that reruns only a failed command is written.
const RERUN: &str = "rerun";

/// Directories of one container run inside a scratch dir.
pub(crate) struct RunDirs {
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Written by strata only; read-only in the container ([`RUN_DIR`]).
    pub control: PathBuf,
    /// Written by the container ([`STATE_DIR`]); read back only through [`crate::beneath`].
    pub state: PathBuf,
    /// The overlay work dir of `state` and the empty lower under it (see `standard_mounts`).
    pub state_work: PathBuf,
    pub empty: PathBuf,
    /// Sources of the step's own mounts (tmp dirs, bind uppers, whiteout layers).
    pub mounts: PathBuf,
    pub sandbox: PathBuf,
}

impl RunDirs {
    pub(crate) fn create(root: &Path) -> anyhow::Result<RunDirs> {
        let dirs = RunDirs {
            upper: root.join("upper"),
            work: root.join("work"),
            control: root.join("control"),
            state: root.join("state"),
            state_work: root.join("state-work"),
            empty: root.join("empty"),
            mounts: root.join("mounts"),
            sandbox: root.join("sandbox"),
        };
        for d in [
            &dirs.upper,
            &dirs.work,
            &dirs.control,
            &dirs.control.join(RERUN),
            &dirs.state,
            &dirs.state_work,
            &dirs.empty,
            &dirs.mounts,
            &dirs.sandbox,
        ] {
            fs::create_dir(d).with_context(|| format!("create {}", d.display()))?;
        }
        Ok(dirs)
    }
}

/// Private copies of the host's resolv.conf and hosts, copied into the container: the build can
/// resolve names, its writes reach neither the host nor the image, and its mount table does not
/// name the store.
pub(crate) fn host_files(control: &Path) -> anyhow::Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    for (name, fallback) in [
        ("resolv.conf", ""),
        ("hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n"),
    ] {
        let copy = control.join(name);
        let content =
            fs::read(Path::new("/etc").join(name)).unwrap_or_else(|_| fallback.as_bytes().to_vec());
        fs::write(&copy, content).with_context(|| format!("write {}", copy.display()))?;
        mounts.push(Mount {
            target: format!("/etc/{name}"),
            source: copy,
            kind: MountKind::Copy { readonly: false },
            beneath: None,
        });
    }
    Ok(mounts)
}

/// The environment of a build container: the image's and the service variables; for stage
/// scripts (and shells looking inside a build) also the locale and the toolbox at the end of
/// PATH. A Dockerfile's `RUN` sees exactly the image's PATH (BuildKit's default PATH when the
/// image has none) and no locale it did not set, as under BuildKit: its shell is found on that
/// PATH, never in the toolbox.
pub(crate) fn build_env(
    config: &ImageConfig,
    service_env: &[(String, String)],
    toolbox: bool,
) -> Vec<String> {
    let mut env = config.clone();
    let path = config.env_var("PATH").unwrap_or(DEFAULT_PATH).to_string();
    if toolbox {
        env.set_env("PATH", &format!("{path}:{}/bin", toolbox::MOUNT_POINT));
    } else {
        env.set_env("PATH", &path);
    }
    if env.env_var("HOME").is_none() {
        env.set_env("HOME", "/root");
    }
    if toolbox {
        env.set_env("LANG", "C.UTF-8");
        env.set_env("LC_ALL", "C.UTF-8");
    }
    for (k, v) in service_env {
        env.set_env(k, v);
    }
    env.config.env
}

/// werf's stage script: one bash script, `set -e`, each command echoed before it runs. Before
/// each command its index is written to the state dir, so a failure names the command.
/// `exports` (`NAME=value`) are exported first, with bash's warnings about them silenced.
pub(crate) fn stage_script(run: &Run, exports: &[String], prelude: &str) -> String {
    let mut s = String::new();
    if !exports.is_empty() {
        let quoted: Vec<String> = exports
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                format!("{k}={}", shell_quote(v))
            })
            .collect();
        s.push_str(&format!("{{ export {}; }} 2>/dev/null\n", quoted.join(" ")));
    }
    s.push_str("set -e\n");
    s.push_str(prelude);
    for (i, command) in run.commands.iter().enumerate() {
        s.push_str(&format!("printf '%s' {i} > {STATE_DIR}/step\n"));
        s.push_str(&format!(
            "printf '+ %s\\n' {}\n",
            shell_quote(&command.text)
        ));
        s.push_str(&command.text);
        s.push('\n');
    }
    s
}

fn non_empty_or(s: &str, default: &str) -> String {
    if s.is_empty() {
        default.to_string()
    } else {
        s.to_string()
    }
}

fn other(e: impl std::fmt::Display) -> ExecError {
    ExecError::Other(format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_plan::Command;

    #[test]
    fn script_echoes_and_marks_each_command() {
        let run = Run {
            commands: vec![
                Command {
                    text: "echo 'a b'".into(),
                    span: None,
                },
                Command {
                    text: "false".into(),
                    span: None,
                },
            ],
            shell: RunShell::ToolboxScript,
            user: None,
            workdir: None,
            env: Vec::new(),
            mounts: Vec::new(),
            no_network: false,
            insecure: false,
        };
        let script = stage_script(&run, &["LC_ALL=C.UTF-8".into()], "");
        assert_eq!(
            script,
            "{ export LC_ALL='C.UTF-8'; } 2>/dev/null\nset -e\nprintf '%s' 0 > /.strata/state/step\nprintf '+ %s\\n' 'echo '\\''a b'\\'''\necho 'a b'\n\
             printf '%s' 1 > /.strata/state/step\nprintf '+ %s\\n' 'false'\nfalse\n"
        );
    }

    #[test]
    fn env_appends_toolbox_and_locale() {
        let mut config = ImageConfig::empty();
        config.set_env("PATH", "/bin");
        let env = build_env(&config, &[("WERF_COMMIT_HASH".into(), "abc".into())], true);
        assert!(env.contains(&"PATH=/bin:/.strata/toolbox/bin".to_string()));
        assert!(env.contains(&"LC_ALL=C.UTF-8".to_string()));
        assert!(env.contains(&"WERF_COMMIT_HASH=abc".to_string()));
        // A Dockerfile's RUN: the image's PATH exactly, no locale it did not set.
        let env = build_env(&config, &[], false);
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert!(!env.iter().any(|e| e.starts_with("LC_ALL=")));
    }
}
