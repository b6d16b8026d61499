//! `datum distribute --problem conformance`: split FLUX conformance vectors across the
//! running nodes, gather the verdicts, and compare each with a local run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::bus::nats::{connect, nats_err};
use crate::bus::BusError;
use crate::node;
use crate::work::{
    node_subject, results_subject, run_item, task_queue, Item, Task, TaskResult, TASKS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Tasks go into a JetStream work queue; whichever node is free takes the next.
    Queue,
    /// Task i goes to node i mod N directly; a node that fails passes it to the next.
    RoundRobin,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Queue => "queue",
            Strategy::RoundRobin => "round-robin",
        }
    }
}

pub struct Options {
    pub url: String,
    pub strategy: Strategy,
    pub chunk: usize,
    pub max_steps: u64,
    pub timeout: Duration,
    pub ack_wait: Duration,
    pub discover: Duration,
    /// Wait (up to `discover`) until this many nodes answer; fewer is an error.
    pub want_nodes: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub strategy: Strategy,
    pub nodes: Vec<String>,
    pub total: usize,
    pub tasks: usize,
    /// Vectors whose distributed verdict equals the local one.
    pub agree: usize,
    pub passed: usize,
    pub passed_locally: usize,
    /// Vectors per node that answered.
    pub by_node: BTreeMap<String, usize>,
    /// Results that arrived more than once (redelivered tasks); ignored after the first.
    pub duplicates: usize,
    /// Tasks handed to another node after a failure (round-robin).
    pub reassigned: usize,
    pub disagreements: Vec<Value>,
    pub wall_ms: u128,
    pub local_ms: u128,
}

pub async fn run(items: Vec<Item>, opts: &Options, job: &str) -> Result<Report, BusError> {
    let client = connect(&opts.url, "datum-distribute").await?;
    let nodes = node::list(&client, &opts.url, opts.discover, opts.want_nodes).await?;
    if let Some(n) = opts.want_nodes.filter(|n| nodes.len() < *n) {
        return Err(BusError::Refused {
            url: opts.url.clone(),
            reason: format!(
                "only {} of the {n} nodes asked for answered within {} ms; start more with `datum node start --nats URL`",
                nodes.len(),
                opts.discover.as_millis()
            ),
        });
    }
    if nodes.is_empty() {
        return Err(BusError::Refused {
            url: opts.url.clone(),
            reason: "no nodes answered; start some with `datum node start --nats URL`".into(),
        });
    }
    let tasks: Vec<Task> = items
        .chunks(opts.chunk.max(1))
        .enumerate()
        .map(|(i, chunk)| Task {
            job: job.to_owned(),
            task: i,
            max_steps: opts.max_steps,
            items: chunk.to_vec(),
            batch: None,
        })
        .collect();
    let started = Instant::now();
    let mut gathered: BTreeMap<usize, Value> = BTreeMap::new();
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut duplicates = 0;
    let mut reassigned = 0;
    let take = |result: TaskResult,
                gathered: &mut BTreeMap<usize, Value>,
                by_node: &mut BTreeMap<String, usize>,
                duplicates: &mut usize| {
        for r in result.results {
            match gathered.entry(r.index) {
                std::collections::btree_map::Entry::Occupied(_) => *duplicates += 1,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(r.verdict);
                    *by_node.entry(result.node.clone()).or_default() += 1;
                }
            }
        }
    };
    match opts.strategy {
        Strategy::Queue => {
            let g = queue(&client, opts, job, &tasks, items.len()).await?;
            gathered = g.results;
            by_node = g.by_node;
            duplicates = g.duplicates;
        }
        Strategy::RoundRobin => {
            let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
            let mut pending = futures_util::stream::FuturesUnordered::new();
            for task in &tasks {
                pending.push(send_direct(&client, &ids, task, opts.timeout));
            }
            while let Some(outcome) = pending.next().await {
                let (result, retries) = outcome?;
                reassigned += retries;
                take(result, &mut gathered, &mut by_node, &mut duplicates);
            }
        }
    }
    let wall_ms = started.elapsed().as_millis();
    if gathered.len() < items.len() {
        return Err(BusError::Refused {
            url: opts.url.clone(),
            reason: format!(
                "only {} of {} vectors came back within {} s; are the nodes still running? (`datum node list`)",
                gathered.len(),
                items.len(),
                opts.timeout.as_secs()
            ),
        });
    }
    // The same vectors here, to check the fleet's answers.
    let local_start = Instant::now();
    let local: Vec<Value> = items
        .iter()
        .map(|item| run_item(item, opts.max_steps))
        .collect();
    let local_ms = local_start.elapsed().as_millis();
    let mut agree = 0;
    let mut disagreements = Vec::new();
    for (item, mine) in items.iter().zip(&local) {
        let theirs = &gathered[&item.index];
        if theirs == mine {
            agree += 1;
        } else {
            disagreements.push(serde_json::json!({
                "index": item.index, "name": item.vector.name, "local": mine, "distributed": theirs,
            }));
        }
    }
    let passed = |v: &Value| v["pass"].as_bool().unwrap_or(false);
    Ok(Report {
        strategy: opts.strategy,
        nodes: nodes.iter().map(|n| n.id.clone()).collect(),
        total: items.len(),
        tasks: tasks.len(),
        agree,
        passed: gathered.values().filter(|v| passed(v)).count(),
        passed_locally: local.iter().filter(|v| passed(v)).count(),
        by_node,
        duplicates,
        reassigned,
        disagreements,
        wall_ms,
        local_ms,
    })
}

/// What came back from the work queue.
struct Gathered {
    results: BTreeMap<usize, Value>,
    by_node: BTreeMap<String, usize>,
    duplicates: usize,
}

/// Put `tasks` in the JetStream work queue and gather results until `expected` runs
/// answered or the timeout; the first result for a run counts (redelivered tasks answer
/// twice).
async fn queue(
    client: &async_nats::Client,
    opts: &Options,
    job: &str,
    tasks: &[Task],
    expected: usize,
) -> Result<Gathered, BusError> {
    let err = nats_err(&opts.url);
    let js = jetstream::new(client.clone());
    task_queue(&js, &opts.url, Some(opts.ack_wait)).await?;
    let mut results = client
        .subscribe(results_subject(job))
        .await
        .map_err(|e| err(e.to_string()))?;
    client.flush().await.map_err(|e| err(e.to_string()))?;
    for task in tasks {
        let body = serde_json::to_vec(task).map_err(|e| BusError::Invalid(e.to_string()))?;
        js.publish(format!("{TASKS}.{job}"), body.into())
            .await
            .map_err(|e| err(e.to_string()))?
            .await
            .map_err(|e| {
                err(format!(
                    "the task queue did not take task {}: {e}",
                    task.task
                ))
            })?;
    }
    let mut g = Gathered {
        results: BTreeMap::new(),
        by_node: BTreeMap::new(),
        duplicates: 0,
    };
    let deadline = tokio::time::Instant::now() + opts.timeout;
    while g.results.len() < expected {
        match tokio::time::timeout_at(deadline, results.next()).await {
            Ok(Some(msg)) => {
                // A malformed or foreign result is ignored: the task is redelivered
                // or the job times out, never filled with a guess.
                let Ok(result) = serde_json::from_slice::<TaskResult>(&msg.payload) else {
                    continue;
                };
                for r in result.results {
                    if r.index >= expected {
                        continue;
                    }
                    match g.results.entry(r.index) {
                        std::collections::btree_map::Entry::Occupied(_) => g.duplicates += 1,
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            slot.insert(r.verdict);
                            *g.by_node.entry(result.node.clone()).or_default() += 1;
                        }
                    }
                }
            }
            Ok(None) => return Err(err("the results subscription closed".into())),
            Err(_) => break,
        }
    }
    Ok(g)
}

/// The runs of a `distribute batch`, in order, and who ran them.
#[derive(Debug, Serialize)]
pub struct BatchReport {
    pub nodes: Vec<String>,
    pub tasks: usize,
    pub results: Vec<crate::work::Ran>,
    pub by_node: BTreeMap<String, usize>,
    pub duplicates: usize,
    pub wall_ms: u128,
}

/// Every program × every stack on the fleet, through the work queue, `chunk` programs
/// per task. Every result is checked for shape; none is trusted to be right (a caller
/// that must be sure reruns what matters).
pub async fn batch(
    programs: &[String],
    stacks: &[Vec<i32>],
    opts: &Options,
    job: &str,
) -> Result<BatchReport, BusError> {
    let client = connect(&opts.url, "datum-distribute").await?;
    let nodes = node::list(&client, &opts.url, opts.discover, opts.want_nodes).await?;
    if nodes.is_empty() || opts.want_nodes.is_some_and(|n| nodes.len() < n) {
        return Err(BusError::Refused {
            url: opts.url.clone(),
            reason: match nodes.len() {
                0 => format!(
                    "no node answered within {} ms; start some with `datum node start --nats URL`",
                    opts.discover.as_millis()
                ),
                n => format!(
                    "only {n} of the {} nodes asked for answered within {} ms; start more with `datum node start --nats URL`",
                    opts.want_nodes.unwrap_or(n),
                    opts.discover.as_millis()
                ),
            },
        });
    }
    let per = stacks.len().max(1);
    let chunk = opts
        .chunk
        .clamp(1, (crate::work::MAX_TASK_ITEMS / per).max(1));
    let tasks: Vec<Task> = programs
        .chunks(chunk)
        .enumerate()
        .map(|(i, slice)| Task {
            job: job.to_owned(),
            task: i,
            max_steps: opts.max_steps,
            items: Vec::new(),
            batch: Some(crate::work::Batch {
                first: i * chunk * stacks.len(),
                programs: slice.to_vec(),
                stacks: stacks.to_vec(),
            }),
        })
        .collect();
    let expected = programs.len() * stacks.len();
    let started = Instant::now();
    let g = queue(&client, opts, job, &tasks, expected).await?;
    let wall_ms = started.elapsed().as_millis();
    let mut results = Vec::with_capacity(expected);
    for i in 0..expected {
        let v = g.results.get(&i).ok_or_else(|| BusError::Refused {
            url: opts.url.clone(),
            reason: format!(
                "only {} of {expected} runs came back within {} s; are the nodes still running? (`datum node list`)",
                g.results.len(),
                opts.timeout.as_secs()
            ),
        })?;
        let ran: crate::work::Ran = serde_json::from_value(v.clone())
            .map_err(|e| BusError::Invalid(format!("run {i} came back malformed: {e}")))?;
        results.push(ran);
    }
    Ok(BatchReport {
        nodes: nodes.iter().map(|n| n.id.clone()).collect(),
        tasks: tasks.len(),
        results,
        by_node: g.by_node,
        duplicates: g.duplicates,
        wall_ms,
    })
}

/// Send a task to node `task % N`; on no answer, to the next node, up to every node once.
async fn send_direct(
    client: &async_nats::Client,
    ids: &[String],
    task: &Task,
    timeout: Duration,
) -> Result<(TaskResult, usize), BusError> {
    let body = serde_json::to_vec(task).map_err(|e| BusError::Invalid(e.to_string()))?;
    let mut failures = Vec::new();
    for attempt in 0..ids.len() {
        let id = &ids[(task.task + attempt) % ids.len()];
        let request = client.request(node_subject(id), body.clone().into());
        match tokio::time::timeout(timeout, request).await {
            Ok(Ok(reply)) => match serde_json::from_slice::<TaskResult>(&reply.payload) {
                Ok(result) => return Ok((result, attempt)),
                Err(e) => failures.push(format!("{id}: bad reply ({e})")),
            },
            Ok(Err(e)) => failures.push(format!("{id}: {e}")),
            Err(_) => failures.push(format!("{id}: no answer in {} s", timeout.as_secs())),
        }
    }
    Err(BusError::Refused {
        url: String::new(),
        reason: format!(
            "task {} failed on every node: {}",
            task.task,
            failures.join("; ")
        ),
    })
}
