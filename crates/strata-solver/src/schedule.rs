//! Which images to build and in what order: a dependency-ordered, bounded-parallel walk.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use strata_plan::Plan;

use crate::{Error, Failures, ImageOutcome, StageState};

/// The indices of the images to build: the named ones (all when none) and their bases.
pub(crate) fn select(plan: &Plan, names: &[String]) -> Result<Vec<usize>, Error> {
    let mut roots = Vec::new();
    if names.is_empty() {
        roots.extend(0..plan.images.len());
    }
    for name in names {
        let index = plan.image_index(name).ok_or_else(|| Error::UnknownImage {
            name: name.clone(),
            known: plan
                .images
                .iter()
                .map(|i| format!("`{}`", i.name))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        roots.push(index);
    }
    let mut wanted = BTreeSet::new();
    let mut stack = roots;
    while let Some(index) = stack.pop() {
        if wanted.insert(index) {
            stack.extend(plan.needs(index));
        }
    }
    Ok(wanted.into_iter().collect())
}

struct Board {
    done: HashMap<usize, StageState>,
    running: BTreeSet<usize>,
    outcomes: Vec<ImageOutcome>,
    error: Option<Failures>,
}

/// Runs `build` for every wanted image once its base image is done, at most `parallel` at once.
/// The first error stops new work (as does `failed`, set when a stage fails, before its
/// image's hooks run); images already running finish, and their errors are kept with it.
pub(crate) fn run<F>(
    plan: &Plan,
    wanted: &[usize],
    parallel: usize,
    cancel: &AtomicBool,
    failed: &AtomicBool,
    build: F,
) -> Result<Vec<ImageOutcome>, Failures>
where
    F: Fn(usize, &[(usize, StageState)]) -> Result<ImageOutcome, Error> + Sync,
{
    let board = Mutex::new(Board {
        done: HashMap::new(),
        running: BTreeSet::new(),
        outcomes: Vec::new(),
        error: None,
    });
    let changed = Condvar::new();
    let dependency = |i: usize| plan.needs(i);
    let worker = || loop {
        let mut b = board
            .lock()
            .expect("no scheduler thread panics while holding the board");
        let next = loop {
            if b.error.is_some() || failed.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed)
            {
                break None;
            }
            let ready = wanted.iter().copied().find(|i| {
                !b.done.contains_key(i)
                    && !b.running.contains(i)
                    && dependency(*i).iter().all(|d| b.done.contains_key(d))
            });
            match ready {
                Some(i) => break Some(i),
                None if b.running.is_empty() => break None,
                None => {
                    b = changed
                        .wait(b)
                        .expect("no scheduler thread panics while holding the board")
                }
            }
        };
        let Some(index) = next else {
            changed.notify_all();
            return;
        };
        b.running.insert(index);
        let deps: Vec<(usize, StageState)> = dependency(index)
            .into_iter()
            .filter_map(|d| b.done.get(&d).map(|s| (d, s.clone())))
            .collect();
        drop(b);
        let result = build(index, &deps);
        let mut b = board
            .lock()
            .expect("no scheduler thread panics while holding the board");
        b.running.remove(&index);
        match result {
            Ok(outcome) => {
                b.done.insert(index, outcome.state.clone());
                b.outcomes.push(outcome);
            }
            Err(e) => match &mut b.error {
                None => b.error = Some(e.into()),
                Some(failures) => failures.others.push(e),
            },
        }
        changed.notify_all();
    };
    std::thread::scope(|s| {
        for _ in 0..parallel.min(wanted.len()).max(1) {
            s.spawn(worker);
        }
    });
    let b = board
        .into_inner()
        .expect("no scheduler thread panicked while holding the board");
    if let Some(e) = b.error {
        return Err(e);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled.into());
    }
    Ok(b.outcomes)
}
