//! `datum node start` and `datum node list`: workers on a NATS server.
//!
//! A node answers presence requests, takes direct tasks on its own subject (the
//! round-robin strategy) and pulls queued tasks from the shared JetStream consumer (the
//! queue strategy). A queued task is acknowledged only after its results are
//! published, with progress acks between vectors; a node that dies mid-task leaves
//! the task unacknowledged and JetStream hands it to another node after `ack_wait`.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures_util::StreamExt;
use serde_json::json;

use crate::bus::nats::{connect, nats_err};
use crate::bus::{now_ms, BusError};
use crate::work::{
    node_subject, results_subject, run_batch, run_item, task_queue, ItemResult, NodeInfo, Task,
    TaskResult, MAX_TASK_ITEMS, PING,
};

pub struct NodeOptions {
    pub url: String,
    pub id: String,
    pub agent: String,
    pub role: String,
    /// Pause after each vector (simulates a slow node; used by tests).
    pub delay: Duration,
}

/// What a node did, reported when it stops.
pub struct NodeReport {
    pub tasks: u64,
    pub vectors: u64,
}

/// Run a node until `stop` resolves. `say` prints progress lines.
pub async fn run(
    opts: &NodeOptions,
    stop: impl std::future::Future<Output = ()>,
    say: &dyn Fn(&str),
) -> Result<NodeReport, BusError> {
    let client = connect(&opts.url, &format!("datum-node-{}", opts.id)).await?;
    let err = nats_err(&opts.url);
    let js = jetstream::new(client.clone());
    let consumer = task_queue(&js, &opts.url, None).await?;
    // One task at a time: a node must not hold tasks it is not working on, or a
    // slow node would sit on work that idle nodes could do.
    let mut queued = consumer
        .stream()
        .max_messages_per_batch(1)
        .messages()
        .await
        .map_err(|e| err(e.to_string()))?;
    let pings = client
        .subscribe(PING)
        .await
        .map_err(|e| err(e.to_string()))?;
    let mut direct = client
        .subscribe(node_subject(&opts.id))
        .await
        .map_err(|e| err(e.to_string()))?;
    client.flush().await.map_err(|e| err(e.to_string()))?;
    let started = now_ms();
    let mut report = NodeReport {
        tasks: 0,
        vectors: 0,
    };
    // Pings are answered on their own task, and vectors run on blocking threads, so a
    // node busy with a long task still answers `node list` and stays in the fleet.
    let processed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pinger = tokio::spawn(answer_pings(
        client.clone(),
        pings,
        NodeInfo {
            id: opts.id.clone(),
            agent: opts.agent.clone(),
            role: opts.role.clone(),
            started,
            processed: 0,
        },
        processed.clone(),
    ));
    let _stop_pinger = AbortOnDrop(pinger);
    say(&format!(
        "node {} ({}) joined {} as {}; Ctrl-C stops it",
        opts.id, opts.agent, opts.url, opts.role
    ));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(msg) = direct.next() => {
                let Some(reply) = msg.reply.clone() else { continue };
                let answer = match serde_json::from_slice::<Task>(&msg.payload) {
                    Ok(task) => {
                        say(&format!("task {} of job {}: {} vectors (direct)", task.task, task.job, task.items.len()));
                        let result = work(opts, &task, None).await;
                        report.tasks += 1;
                        report.vectors += task.items.len() as u64;
                        processed.store(report.vectors, std::sync::atomic::Ordering::Relaxed);
                        serde_json::to_vec(&result).unwrap_or_default()
                    }
                    Err(e) => serde_json::to_vec(&json!({"error": format!("not a task: {e}")})).unwrap_or_default(),
                };
                let _ = client.publish(reply, answer.into()).await;
            }
            next = queued.next() => {
                let msg = match next {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => { say(&format!("warning: the task queue: {e}")); continue }
                    None => return Err(err("the task queue closed".into())),
                };
                let task = match serde_json::from_slice::<Task>(&msg.payload) {
                    Ok(t) if t.runs() <= MAX_TASK_ITEMS => t,
                    Ok(t) => {
                        say(&format!("warning: dropping task {} of job {}: {} runs, over the {MAX_TASK_ITEMS} a task may hold", t.task, t.job, t.runs()));
                        let _ = msg.ack_with(AckKind::Term).await;
                        continue;
                    }
                    Err(e) => {
                        say(&format!("warning: dropping a malformed task: {e}"));
                        let _ = msg.ack_with(AckKind::Term).await;
                        continue;
                    }
                };
                let redelivered = msg.info().map(|i| i.delivered > 1).unwrap_or(false);
                say(&format!(
                    "task {} of job {}: {} {}{}",
                    task.task, task.job, task.runs(),
                    if task.batch.is_some() { "runs" } else { "vectors" },
                    if redelivered { " (redelivered)" } else { "" }
                ));
                let result = work(opts, &task, Some(&msg)).await;
                let body = serde_json::to_vec(&result).unwrap_or_default();
                // Results first, ack second: a crash in between means a duplicate
                // (the distributor ignores it), never a lost task.
                client
                    .publish(results_subject(&task.job), body.into())
                    .await
                    .map_err(|e| err(e.to_string()))?;
                client.flush().await.map_err(|e| err(e.to_string()))?;
                msg.ack().await.map_err(|e| err(e.to_string()))?;
                report.tasks += 1;
                report.vectors += task.runs() as u64;
                processed.store(report.vectors, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
    Ok(report)
}

async fn work(opts: &NodeOptions, task: &Task, queued: Option<&jetstream::Message>) -> TaskResult {
    let mut results = Vec::with_capacity(task.runs());
    if let Some(batch) = &task.batch {
        // One blocking call for the whole batch: its runs are short.
        let (owned, steps) = (batch.clone(), task.max_steps);
        match tokio::task::spawn_blocking(move || run_batch(&owned, steps)).await {
            Ok(r) => results.extend(r),
            Err(e) => results.extend((0..task.runs()).map(|i| ItemResult {
                index: batch.first + i,
                verdict: json!({ "error": format!("the batch's run failed: {e}") }),
            })),
        }
        if let Some(msg) = queued {
            let _ = msg.ack_with(AckKind::Progress).await;
        }
    }
    for item in &task.items {
        // CPU work off the async executor (run_item caps the wire's step limit).
        let (owned, steps) = (item.clone(), task.max_steps);
        let verdict = tokio::task::spawn_blocking(move || run_item(&owned, steps))
            .await
            .unwrap_or_else(
                |e| json!({ "pass": false, "reason": format!("the vector's run failed: {e}") }),
            );
        results.push(ItemResult {
            index: item.index,
            verdict,
        });
        if !opts.delay.is_zero() {
            tokio::time::sleep(opts.delay).await;
        }
        if let Some(msg) = queued {
            // Still working: keep JetStream from handing the task to another node.
            let _ = msg.ack_with(AckKind::Progress).await;
        }
    }
    TaskResult {
        job: task.job.clone(),
        task: task.task,
        node: opts.id.clone(),
        results,
    }
}

/// Aborts the task when the node stops (however it stops).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Answer `node list` pings with this node's description until aborted.
async fn answer_pings(
    client: async_nats::Client,
    mut pings: async_nats::Subscriber,
    mut info: NodeInfo,
    processed: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    while let Some(ping) = pings.next().await {
        info.processed = processed.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(reply) = ping.reply {
            let body = serde_json::to_vec(&info).unwrap_or_default();
            let _ = client.publish(reply, body.into()).await;
        }
    }
}

/// Every node that answers within `wait`.
/// Every node that answers within `wait` — or, with `want`, as soon as that many
/// have answered (a condition, not a fixed window: loaded machines answer late). The
/// ping is repeated every 250 ms, so a node that subscribes late is still found.
pub async fn list(
    client: &async_nats::Client,
    url: &str,
    wait: Duration,
    want: Option<usize>,
) -> Result<Vec<NodeInfo>, BusError> {
    let err = nats_err(url);
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| err(e.to_string()))?;
    let mut nodes = std::collections::BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        client
            .publish_with_reply(PING, inbox.clone(), Vec::new().into())
            .await
            .map_err(|e| err(e.to_string()))?;
        client.flush().await.map_err(|e| err(e.to_string()))?;
        let round = (tokio::time::Instant::now() + Duration::from_millis(250)).min(deadline);
        while let Ok(Some(msg)) = tokio::time::timeout_at(round, replies.next()).await {
            if let Ok(info) = serde_json::from_slice::<NodeInfo>(&msg.payload) {
                nodes.insert(info.id.clone(), info);
            }
            if want.is_some_and(|n| nodes.len() >= n) {
                return Ok(nodes.into_values().collect());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(nodes.into_values().collect());
        }
    }
}
