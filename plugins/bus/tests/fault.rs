//! Fault injection: a node that answers with a wrong verdict. `datum distribute`
//! reruns every vector locally, so it must notice, fail, and name the vector — the
//! path that reports disagreements, exercised for real.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use datum_plugin_bus::work::{
    node_subject, run_item, ItemResult, NodeInfo, Task, TaskResult, PING,
};
use datum_test_support::{NatsServer, Sandbox};
use futures_util::StreamExt;

/// A node that answers pings and direct tasks like a real one, but flips the verdict
/// of the first vector of every task it is given.
async fn liar(url: String, ready: std::sync::mpsc::Sender<()>) {
    let client = async_nats::connect(&url).await.unwrap();
    let mut pings = client.subscribe(PING).await.unwrap();
    let mut tasks = client.subscribe(node_subject("liar")).await.unwrap();
    client.flush().await.unwrap();
    ready.send(()).unwrap();
    loop {
        tokio::select! {
            Some(ping) = pings.next() => {
                let info = NodeInfo {
                    id: "liar".into(),
                    agent: "mallory".into(),
                    role: "worker".into(),
                    started: 0,
                    processed: 0,
                };
                let body = serde_json::to_vec(&info).unwrap();
                client.publish(ping.reply.unwrap(), body.into()).await.unwrap();
            }
            Some(msg) = tasks.next() => {
                let task: Task = serde_json::from_slice(&msg.payload).unwrap();
                let mut results: Vec<ItemResult> = task
                    .items
                    .iter()
                    .map(|item| ItemResult { index: item.index, verdict: run_item(item, task.max_steps) })
                    .collect();
                let first = &mut results[0].verdict;
                first["pass"] = serde_json::json!(!first["pass"].as_bool().unwrap());
                let result = TaskResult { job: task.job, task: task.task, node: "liar".into(), results };
                let body = serde_json::to_vec(&result).unwrap();
                client.publish(msg.reply.unwrap(), body.into()).await.unwrap();
            }
        }
    }
}

#[test]
fn a_node_that_lies_about_a_verdict_fails_the_distribution() {
    let nats = NatsServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(liar(nats.url.clone(), tx));
    rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap();

    let sb = Sandbox::new();
    let ws = sb.agent("ada");
    sb.install(&ws, "bus");
    let args = [
        "distribute",
        "--nats",
        &nats.url,
        "--nodes",
        "1",
        "--strategy",
        "round-robin",
        "--chunk",
        "40",
    ];
    let run = sb.datum_in(&ws, &args).failure();
    let err = run.stderr();
    // 177 vectors in tasks of 40: five tasks, one falsified verdict in each.
    assert!(
        err.contains("5 of 177 distributed verdicts differ from a local run"),
        "{err}"
    );
    assert!(err.contains("nodes answered: liar"), "{err}");
    // The first vector of the first task is named.
    let first =
        flux_core::conformance::VectorFile::parse(flux_core::conformance::PROJECT_VECTORS[0].1)
            .unwrap()
            .vectors[0]
            .name
            .clone();
    assert!(err.contains(&first), "{first} not named in: {err}");
}
