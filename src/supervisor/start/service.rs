//! One service's task in `up`: wait for its own image (built by `build.rs`,
//! or pulled by `images.rs`; a refused or failed one fails the service), create its
//! containers off the critical path, wait for each dependency's condition
//! (woken by the dependency's own task), start, then follow until settled.

use super::*;

pub(super) fn condition_word(c: Condition) -> &'static str {
    match c {
        Condition::ServiceStarted => "started",
        Condition::ServiceHealthy => "healthy",
        Condition::ServiceCompletedSuccessfully => "completed",
    }
}

pub(super) fn waiting_reason(deps: &[(String, Condition)]) -> String {
    if deps.is_empty() {
        return "queued".to_string();
    }
    let list: Vec<String> = deps
        .iter()
        .map(|(d, c)| format!("{d} ({})", condition_word(*c)))
        .collect();
    format!("waiting for {}", list.join(", "))
}

/// Waits until `dep` satisfies `condition`. `Ok(recreated)` when it holds,
/// `Err(reason)` when it never will.
pub(super) async fn wait_condition(
    mut rx: watch::Receiver<Progress>,
    dep: &str,
    condition: Condition,
) -> Result<bool, String> {
    loop {
        {
            let p = rx.borrow_and_update();
            if let Some(reason) = &p.failed {
                return Err(format!("{dep} failed: {reason}"));
            }
            match condition {
                Condition::ServiceStarted if p.started => return Ok(p.recreated),
                Condition::ServiceHealthy if p.healthy => return Ok(p.recreated),
                Condition::ServiceHealthy if p.exit.is_some() => {
                    return Err(format!("{dep} exited before it became healthy"))
                }
                Condition::ServiceCompletedSuccessfully => match p.exit {
                    Some(0) => return Ok(p.recreated),
                    Some(code) => return Err(format!("{dep} exited with code {code}")),
                    None => {}
                },
                _ => {}
            }
        }
        if rx.changed().await.is_err() {
            return Err(format!("{dep} stopped reporting"));
        }
    }
}

/// Waits until `image` is pulled, showing the pull on the service (state
/// `pending`, reason `pulling IMAGE`, the numbers in `pull`, at most 4
/// writes a second). `Err(reason)` when the pull failed.
async fn await_image(ctx: &Ctx, name: &str, image: &str) -> Result<(), String> {
    let Some(mut rx) = ctx.images.watch(image) else {
        return Ok(());
    };
    let mut shown_pulling = false;
    let mut last_write: Option<Instant> = None;
    loop {
        let state = rx.borrow_and_update().clone();
        match state {
            images::ImageState::Ready => {
                ctx.writes.status(name, StatusWrite::Pull(None));
                return Ok(());
            }
            images::ImageState::Failed(reason) => {
                ctx.writes.status(name, StatusWrite::Pull(None));
                return Err(reason);
            }
            images::ImageState::Queued => {}
            images::ImageState::Pulling(progress) => {
                if !shown_pulling {
                    shown_pulling = true;
                    ctx.writes
                        .set(name, ServiceState::Pending, format!("pulling {image}"));
                }
                if last_write.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
                    last_write = Some(Instant::now());
                    ctx.writes.status(name, StatusWrite::Pull(Some(progress)));
                }
            }
        }
        if rx.changed().await.is_err() {
            // The pull task ended; its last state tells how.
            let last = rx.borrow().clone();
            return match last {
                images::ImageState::Ready => Ok(()),
                images::ImageState::Failed(reason) => Err(reason),
                _ => Err(format!("the pull of {image} stopped")),
            };
        }
    }
}

pub(super) async fn run_service(
    ctx: Arc<Ctx>,
    name: String,
    receivers: HashMap<String, watch::Receiver<Progress>>,
) {
    let service = &ctx.project.services[&name];
    let me = &ctx.progress[&name];
    let deps = deps_in(service, &ctx.selected);
    // Services without dependencies were counted as starting before the tasks began.
    let mut slot = deps.is_empty().then(|| StartSlot::adopt(&ctx.starting));
    // Subscribe before anything of ours can start, so no event is missed.
    let events = ctx.events.receiver();
    let fail = |reason: String| {
        ctx.writes.set(&name, ServiceState::Failed, &reason);
        me.send_modify(|p| p.failed = Some(reason));
    };

    // 1. Its own image: present, built or pulled now (both before the start
    //    window, which opens at container start), or refused.
    match ctx.decisions.get(&name) {
        Some(images::Decision::Refuse(reason)) => return fail(reason.clone()),
        Some(images::Decision::Build) => {
            // A service waiting for its build does not hold back others' creation.
            drop(slot.take());
            if let Err(reason) = super::build::build_image(&ctx, service).await {
                return fail(reason);
            }
            ctx.writes
                .set(&name, ServiceState::Pending, waiting_reason(&deps));
            if deps.is_empty() {
                slot = Some(StartSlot::take(&ctx.starting));
            }
        }
        Some(images::Decision::Pull) => {
            // A service waiting for its pull does not hold back others' creation.
            drop(slot.take());
            let image = service.image.as_deref().unwrap_or_default();
            if let Err(reason) = await_image(&ctx, &name, image).await {
                return fail(reason);
            }
            ctx.writes
                .set(&name, ServiceState::Pending, waiting_reason(&deps));
            if deps.is_empty() {
                slot = Some(StartSlot::take(&ctx.starting));
            }
        }
        Some(images::Decision::Present) | None => {}
    }

    // 2. Create (not start) the containers while the dependencies get ready,
    //    so creation is off the critical path: at once when there are no
    //    dependencies, otherwise as soon as no other service is starting.
    let existing = ctx.take_existing(&name);
    let mut creating: Option<PreparingFuture<'_>> = None;
    let mut create_now = Some(existing);
    if deps.is_empty() {
        if let Some(existing) = create_now.take() {
            creating = Some(Box::pin(prepare(&ctx, service, false, Some(existing))));
        }
    }
    let mut prepared: Option<Prepared> = None;

    // 3. Dependencies, all at once; the reason lists what is still awaited.
    let mut waits = futures_util::stream::FuturesUnordered::new();
    for (dep, condition) in &deps {
        let rx = receivers[dep].clone();
        let dep = dep.clone();
        let condition = *condition;
        let restart = service.depends_on[&dep].restart;
        waits.push(async move {
            let r = wait_condition(rx, &dep, condition).await;
            (dep, restart, r)
        });
    }
    let mut remaining: Vec<(String, Condition)> = deps.clone();
    let mut force_recreate = false;
    while !remaining.is_empty() {
        tokio::select! {
            _ = no_start_in_flight(ctx.starting.subscribe()), if create_now.is_some() => {
                if let Some(existing) = create_now.take() {
                    creating = Some(Box::pin(prepare(&ctx, service, false, Some(existing))));
                }
            }
            done = async { creating.as_mut().expect("guarded").await }, if creating.is_some() => {
                creating = None;
                match done {
                    Ok(p) => prepared = Some(p),
                    Err(reason) => return fail(reason.to_string()),
                }
            }
            next = waits.next() => {
                let Some((dep, restart, result)) = next else { break };
                match result {
                    Ok(recreated) => {
                        // A recreated dependency whose network namespace
                        // this service joins is a new namespace: recreate,
                        // as for `restart: true`.
                        let joins = service.network_mode.as_deref()
                            == Some(format!("service:{dep}").as_str());
                        force_recreate |= (restart || joins) && recreated;
                        remaining.retain(|(d, _)| *d != dep);
                        if !remaining.is_empty() {
                            ctx.writes.set(
                                &name,
                                ServiceState::Pending,
                                waiting_reason(&remaining),
                            );
                        }
                    }
                    Err(reason) => {
                        let reason = format!("blocked: {reason}");
                        // Blocked services are not started: drop what was created for them.
                        if let Some(c) = creating.take() {
                            prepared = c.await.ok();
                        }
                        for id in prepared.iter().flat_map(|p| &p.created) {
                            let _ = ctx.engine.remove_container(id, true).await;
                        }
                        ctx.writes.set(&name, ServiceState::Blocked, &reason);
                        me.send_modify(|p| p.failed = Some(reason));
                        return;
                    }
                }
            }
        }
    }
    // From here on this service is starting: creations of others wait for it.
    if slot.is_none() {
        slot = Some(StartSlot::take(&ctx.starting));
    }
    let mut prepared = match (prepared, creating, create_now) {
        (Some(p), _, _) => p,
        (None, Some(c), _) => match c.await {
            Ok(p) => p,
            Err(reason) => return fail(reason.to_string()),
        },
        (None, None, existing) => match prepare(&ctx, service, false, existing).await {
            Ok(p) => p,
            Err(reason) => return fail(reason.to_string()),
        },
    };

    // 4. Start (recreating first when a `restart: true` dependency was recreated).
    let began = Instant::now();
    if force_recreate && !prepared.changed {
        match prepare(&ctx, service, true, None).await {
            Ok(p) => prepared = p,
            Err(reason) => return fail(reason.to_string()),
        }
    }
    let ids = match launch(&ctx, service, prepared).await {
        Ok(ids) => ids,
        Err(reason) => return fail(reason.to_string()),
    };
    drop(slot);
    let gated = ctx
        .gate
        .as_ref()
        .is_some_and(|g| g.services.contains(&name));
    if gated && !ids.is_empty() {
        // The start call returned: the probe runner's start window opens now.
        let _ = ctx
            .writes
            .control()
            .send(crate::supervisor::runner::Control::Started {
                service: name.clone(),
            });
    }

    // 5. Follow them until ready / completed / failed (and on, for dependents
    //    that wait for completion, until the whole `up` settles).
    follow(&ctx, &name, ids, events, began).await;
}
