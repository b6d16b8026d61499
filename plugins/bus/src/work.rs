//! Distributed work on NATS: the task and result messages, the subjects and the
//! JetStream work queue shared by `node start` and `distribute`.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use flux_core::conformance::{Vector, VectorFile};
use flux_core::Profile;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bus::nats::{nats_err, open_stream};
use crate::bus::BusError;

/// Nodes answer presence requests here.
pub const PING: &str = "datum.node.ping";
/// JetStream stream holding queued tasks (work-queue retention: gone once acked).
pub const TASKS_STREAM: &str = "DATUM_TASKS";
pub const TASKS: &str = "datum.tasks";
/// The one shared consumer every node pulls from: each task goes to one node.
pub const WORKERS: &str = "workers";

/// How long a node may hold a task without a progress ack before it is redelivered.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(10);

/// Direct tasks for one node (the round-robin strategy).
pub fn node_subject(id: &str) -> String {
    format!("datum.node.{id}.task")
}

/// Where nodes publish the results of a queued job.
pub fn results_subject(job: &str) -> String {
    format!("datum.results.{job}")
}

/// A node's answer to a presence request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    pub agent: String,
    pub role: String,
    pub started: u64,
    /// Vectors this node has run since it started.
    pub processed: u64,
}

/// One vector to run, with its place in the job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Item {
    pub index: usize,
    pub profile: String,
    pub vector: Vector,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub job: String,
    pub task: usize,
    pub max_steps: u64,
    #[serde(default)]
    pub items: Vec<Item>,
    /// A batch of runs instead of vectors (`distribute batch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
}

impl Task {
    /// How many runs the task asks for (a node refuses more than [`MAX_TASK_ITEMS`]).
    pub fn runs(&self) -> usize {
        self.items.len()
            + self
                .batch
                .as_ref()
                .map_or(0, |b| b.programs.len().saturating_mul(b.stacks.len()))
    }
}

/// Every program × every initial stack, stack profile: run `first + i` of the job is
/// program `i / stacks` with stack `i % stacks` of this slice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch {
    pub first: usize,
    /// Programs as hex.
    pub programs: Vec<String>,
    pub stacks: Vec<Vec<i32>>,
}

/// What a batch run reports: enough to judge an answer, small on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ran {
    pub status: flux_core::Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<flux_core::Trap>,
    pub stack: Vec<i32>,
    pub steps: u64,
}

/// Run a batch as a node does (the step limit capped at [`MAX_STEPS`]); a program that
/// is not hex is reported as an invalid opcode at step 0 for each of its runs.
pub fn run_batch(batch: &Batch, max_steps: u64) -> Vec<ItemResult> {
    let max_steps = max_steps.min(MAX_STEPS);
    let mut out = Vec::with_capacity(batch.programs.len() * batch.stacks.len());
    for (p, hex) in batch.programs.iter().enumerate() {
        let code = flux_core::hex::decode(hex);
        for (k, stack) in batch.stacks.iter().enumerate() {
            let ran = match &code {
                Ok(code) => {
                    let config = flux_core::Config {
                        initial_stack: stack.iter().map(|w| *w as u32).collect(),
                        max_steps,
                        ..flux_core::Config::default()
                    };
                    let r = flux_core::run(code, &config);
                    Ran {
                        status: r.status,
                        error: r.error,
                        stack: r.stack,
                        steps: r.steps,
                    }
                }
                Err(_) => Ran {
                    status: flux_core::Status::Trap,
                    error: Some(flux_core::Trap::InvalidOpcode),
                    stack: Vec::new(),
                    steps: 0,
                },
            };
            out.push(ItemResult {
                index: batch.first + p * batch.stacks.len() + k,
                verdict: serde_json::to_value(ran).unwrap_or(Value::Null),
            });
        }
    }
    out
}

/// A vector's verdict, as JSON (compared field for field with a local run).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemResult {
    pub index: usize,
    pub verdict: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskResult {
    pub job: String,
    pub task: usize,
    pub node: String,
    pub results: Vec<ItemResult>,
}

pub fn parse_profile(p: &str) -> Result<Profile, String> {
    match p {
        "stack" => Ok(Profile::Stack),
        "reg" => Ok(Profile::Reg),
        other => Err(format!("unknown profile `{other}`")),
    }
}

pub fn profile_name(p: Profile) -> &'static str {
    match p {
        Profile::Stack => "stack",
        Profile::Reg => "reg",
    }
}

/// The most steps one vector may run when the limit comes from the wire: a task
/// asking for more (`u64::MAX`) runs with this, so one message cannot hold a node
/// for ever. `datum distribute --max-steps` is refused above it, so the
/// distributor's own rerun uses the same limit and verdicts still compare.
pub const MAX_STEPS: u64 = 100_000_000;
/// A task holding more vectors than this is refused whole.
pub const MAX_TASK_ITEMS: usize = 100_000;

/// Run one vector exactly as `datum flux conformance` does, as JSON (the step limit
/// capped at [`MAX_STEPS`]).
pub fn run_item(item: &Item, max_steps: u64) -> Value {
    let max_steps = max_steps.min(MAX_STEPS);
    let verdict = match parse_profile(&item.profile) {
        Ok(profile) => serde_json::to_value(item.vector.check(profile, max_steps)),
        Err(e) => serde_json::to_value(flux_core::conformance::Verdict {
            name: item.vector.name.clone(),
            pass: false,
            reason: e,
            result: None,
        }),
    };
    verdict.unwrap_or(Value::Null)
}

/// Flatten vector files into numbered items.
pub fn items_of(files: &[VectorFile]) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for file in files {
        let profile = profile_name(file.profile()?);
        for v in &file.vectors {
            items.push(Item {
                index: items.len(),
                profile: profile.to_owned(),
                vector: v.clone(),
            });
        }
    }
    Ok(items)
}

/// The task queue and its shared consumer, created on first use by either side.
/// `ack_wait: Some(..)` (the distributor) also updates an existing consumer: the job's
/// submitter decides how soon a silent node's task goes to another node.
pub async fn task_queue(
    js: &jetstream::Context,
    url: &str,
    ack_wait: Option<Duration>,
) -> Result<jetstream::consumer::Consumer<pull::Config>, BusError> {
    let err = nats_err(url);
    let stream = open_stream(
        js,
        stream::Config {
            name: TASKS_STREAM.into(),
            subjects: vec![format!("{TASKS}.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            max_age: Duration::from_secs(3600),
            ..Default::default()
        },
    )
    .await
    .map_err(|e| {
        err(format!(
            "cannot open the task queue {TASKS_STREAM} ({e}); is the server started with -js?"
        ))
    })?;
    let config = pull::Config {
        durable_name: Some(WORKERS.into()),
        ack_wait: ack_wait.unwrap_or(DEFAULT_ACK_WAIT),
        // A task that keeps killing nodes stops being retried eventually.
        max_deliver: 20,
        ..Default::default()
    };
    let consumer = match ack_wait {
        Some(_) => stream.create_consumer(config).await,
        None => stream.get_or_create_consumer(WORKERS, config).await,
    };
    consumer.map_err(|e| err(format!("cannot open the shared consumer `{WORKERS}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes start together and each creates the streams it needs; a creation the
    /// server refuses while another client's is under way (CI saw "subjects overlap
    /// with an existing stream", 10065, with three nodes starting at once) is retried
    /// as an open. Here the refusal is made to happen: a stream holding the subjects
    /// exists at first and goes away 120 ms later.
    #[test]
    fn a_refused_stream_creation_is_retried_until_the_conflict_clears() {
        let server = datum_test_support::NatsServer::start();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let client = async_nats::connect(&server.url).await.unwrap();
            let js = jetstream::new(client);
            let squatter = stream::Config {
                name: "SQUATTER".into(),
                subjects: vec![format!("{TASKS}.>")],
                ..Default::default()
            };
            js.create_stream(squatter).await.unwrap();
            let clearing = {
                let js = js.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(120)).await;
                    js.delete_stream("SQUATTER").await.unwrap();
                })
            };
            task_queue(&js, &server.url, None).await.unwrap();
            clearing.await.unwrap();
            // A conflict that never clears still ends, with the server's reason.
            js.create_stream(stream::Config {
                name: "SQUATTER2".into(),
                subjects: vec!["datum.other.>".into()],
                ..Default::default()
            })
            .await
            .unwrap();
            let err = crate::bus::nats::open_stream(
                &js,
                stream::Config {
                    name: "LATECOMER".into(),
                    subjects: vec!["datum.other.>".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
            assert!(err.to_string().contains("overlap"), "{err}");
        });
    }

    /// A batch from the wire: a program that never ends, one that is not hex, a stack
    /// deeper than the VM's — each run still ends, in its place (the step limit's cap is
    /// the test above).
    #[test]
    fn a_hostile_batch_runs_to_traps_in_order() {
        let batch: Batch = serde_json::from_value(serde_json::json!({
            "first": 10,
            "programs": ["50fdff", "not hex", "5502000000601000"],
            "stacks": [[], vec![7; flux_core::STACK_CAPACITY + 1]]
        }))
        .unwrap();
        let task = Task {
            job: "j".into(),
            task: 0,
            max_steps: 1000,
            items: Vec::new(),
            batch: Some(batch.clone()),
        };
        assert_eq!(task.runs(), 6);
        let out = run_batch(&batch, task.max_steps);
        let indices: Vec<usize> = out.iter().map(|r| r.index).collect();
        assert_eq!(indices, (10..16).collect::<Vec<_>>());
        let ran: Vec<Ran> = out
            .iter()
            .map(|r| serde_json::from_value(r.verdict.clone()).unwrap())
            .collect();
        assert_eq!(ran[0].error, Some(flux_core::Trap::StepLimit));
        assert_eq!(ran[0].steps, 1000);
        assert_eq!(ran[1].error, Some(flux_core::Trap::StackOverflow));
        assert_eq!(ran[2].error, Some(flux_core::Trap::InvalidOpcode));
        assert_eq!(ran[3].error, Some(flux_core::Trap::InvalidOpcode));
        assert_eq!(
            (ran[4].status, &ran[4].stack[..]),
            (flux_core::Status::Halted, &[4][..])
        );
        assert_eq!(ran[5].error, Some(flux_core::Trap::StackOverflow));
    }

    /// A task from the wire asking for u64::MAX steps on a loop that never ends runs
    /// MAX_STEPS and stops: one message cannot hold a node for ever.
    #[test]
    fn a_step_limit_from_the_wire_is_capped() {
        let vector: Vector = serde_json::from_value(serde_json::json!({
            "name": "forever",
            "bytecode_hex": "50fdff",
            "expected_error": "STEP_LIMIT"
        }))
        .unwrap();
        let item = Item {
            index: 0,
            profile: "stack".into(),
            vector,
        };
        let verdict = run_item(&item, u64::MAX);
        assert_eq!(
            verdict["result"]["steps"],
            serde_json::json!(MAX_STEPS),
            "{verdict}"
        );
        assert_eq!(verdict["pass"], true, "{verdict}");
    }
}
