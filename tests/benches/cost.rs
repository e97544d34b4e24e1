//! `make bench`: what a replication costs, in requests and dollars per million objects.
//!
//! Small objects go through the real handlers on the local stack: moto's notifications
//! (given a sequencer each, as S3's carry) are ingested in batches of ten and the jobs
//! replicated in batches of ten, with every S3 and SQS request our code sends counted
//! (`RequestLog`). What the platform does around them is added by rule and shown as
//! such: S3's SendMessage of each notification to the events queue, and the SQS
//! trigger's receive and delete per batch of ten. Lambda is priced from invocations and
//! the handlers' measured time on this stack at 128 MB arm64 (a lower bound of AWS's
//! latency-bound durations, so its share is small either way). Prices: us-east-1 list.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_sdk_s3::types::ObjectOwnership;
use integration_tests::{config, one_rule, sqs_batch, Pipeline, Stack};
use replicator::config::clients::{RequestLog, S3Clients};
use replicator::ingest::Ingest;
use replicator::replicate::Replicator;
use serde_json::Value;

const S3_WRITE: f64 = 0.005 / 1000.0; // PUT, COPY, POST, LIST
const S3_READ: f64 = 0.0004 / 1000.0; // GET, HEAD and the rest (DELETE is free)
const SQS: f64 = 0.40 / 1e6;
const LAMBDA_INVOKE: f64 = 0.20 / 1e6;
const LAMBDA_MS_128: f64 = 0.000_013_333_4 * 0.125 / 1000.0;
/// S3 replication: one PUT at the destination per object.
const NATIVE: f64 = S3_WRITE;

#[derive(Default)]
struct Tally {
    /// Requests per object, by label.
    requests: BTreeMap<String, f64>,
    dollars: f64,
    lambda_ms: f64,
}

impl Tally {
    fn add(&mut self, label: &str, per_object: f64, price: f64) {
        *self.requests.entry(label.to_string()).or_default() += per_object;
        self.dollars += per_object * price;
    }

    /// Our own requests, classified from the log.
    fn count(&mut self, log: &RequestLog, objects: usize) {
        for line in log.take() {
            let n = 1.0 / objects as f64;
            let mut parts = line.split(' ');
            let method = parts.next().unwrap_or_default();
            let path = parts.next().unwrap_or_default();
            let rest: Vec<&str> = parts.collect();
            if let Some(target) = rest.iter().find(|p| p.starts_with("AmazonSQS.")) {
                self.add(&format!("SQS {}", &target[10..]), n, SQS);
                continue;
            }
            let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
            // The SDK names most operations in an `x-id` parameter; sub-resources
            // (?tagging, ?acl) name the rest.
            let operation = query
                .split('&')
                .find_map(|p| p.strip_prefix("x-id="))
                .map(str::to_string);
            let sub = query.split(['=', '&']).next().unwrap_or("");
            let label = match (method, rest.contains(&"copy"), operation) {
                ("PUT", true, _) => "S3 CopyObject".to_string(),
                (_, _, Some(op)) => format!("S3 {op}"),
                (m, _, None) if sub.is_empty() => format!("S3 {m}"),
                (m, _, None) => format!("S3 {m} ?{sub}"),
            };
            let price = match method {
                "PUT" | "POST" => S3_WRITE,
                // Listings are priced as writes.
                "GET" if query.contains("list-type") || query.starts_with("uploads") => S3_WRITE,
                "DELETE" => 0.0,
                _ => S3_READ,
            };
            self.add(&label, n, price);
        }
    }
}

/// Objects per scenario.
fn objects() -> usize {
    std::env::var("S3R_BENCH_COST_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
}

/// moto's notifications, with the sequencer S3's would carry.
fn with_sequencers(bodies: Vec<String>, next: &mut u64) -> Vec<String> {
    bodies
        .into_iter()
        .filter(|b| !b.contains("s3:TestEvent"))
        .map(|b| {
            let mut v: Value = serde_json::from_str(&b).expect("notification");
            for r in v["Records"].as_array_mut().into_iter().flatten() {
                *next += 1;
                r["s3"]["object"]["sequencer"] = Value::String(format!("{:018X}", *next));
            }
            v.to_string()
        })
        .collect()
}

struct Run {
    stack: Stack,
    p: Pipeline,
    s3_log: RequestLog,
    sqs_log: RequestLog,
    ingest: Ingest,
    replicator: Replicator,
    sequencer: u64,
}

impl Run {
    async fn new(stack: &Stack, destination: &str, other: Option<&Stack>) -> Run {
        Run::on(stack, destination, other, true).await
    }

    /// `wired`: the bucket sends its own notifications (moto), else the bench sends
    /// the events S3 would (SeaweedFS sends none), and ACLs stay as the server has them.
    async fn on(stack: &Stack, destination: &str, other: Option<&Stack>, wired: bool) -> Run {
        let p = match wired {
            true => Pipeline::new(stack).await,
            false => Pipeline::unwired(stack).await,
        };
        let dst = match other {
            Some(o) => o.bucket("cost-dst").await,
            None => stack.bucket("cost-dst").await,
        };
        let destination = destination.replace("DST", &dst);
        let cfg = config(&one_rule(&p.source, &destination));
        let (s3, s3_log) = stack.counted_s3();
        let sqs_log = RequestLog::default();
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&stack.sdk)
                .endpoint_url(&stack.sqs_endpoint)
                .interceptor(sqs_log.clone())
                .build(),
        );
        let clients = S3Clients::build(&stack.sdk, s3.clone(), &cfg, Some(&s3_log))
            .await
            .expect("clients");
        let mut replicator = Replicator::new(
            cfg.clone(),
            clients,
            sqs.clone(),
            Some(p.failed.url.clone()),
        );
        replicator.work_queue_url = Some(p.work.url.clone());
        replicator.retry_queue_url = Some(p.retry.url.clone());
        let ingest = Ingest {
            config: cfg,
            s3,
            sqs,
            work_queue_url: p.work.url.clone(),
            failed_queue_url: Some(p.failed.url.clone()),
            signer: replicator::config::keys::Signer::unsigned(),
        };
        // ACLs disabled, as on every bucket made since 2023, unless the rule copies them.
        let acls = if destination.contains("\"copy\"") {
            ObjectOwnership::ObjectWriter
        } else {
            ObjectOwnership::BucketOwnerEnforced
        };
        for bucket in [&p.source, &dst] {
            let target = other.filter(|_| bucket == &dst).unwrap_or(stack);
            if wired {
                target.set_ownership(bucket, acls.clone()).await;
            }
        }
        Run {
            stack: stack.clone(),
            p,
            s3_log,
            sqs_log,
            ingest,
            replicator,
            sequencer: 0,
        }
    }

    /// Ingests and replicates what the events queue holds, as the triggers would.
    async fn drive(&mut self, tally: &mut Tally, objects: usize, direct: bool) {
        let events = self.stack.drain(&self.p.events).await;
        let events = with_sequencers(events, &mut self.sequencer);
        let started = Instant::now();
        if direct {
            // S3 invokes ingest once per notification.
            for e in &events {
                self.ingest
                    .ingest(&serde_json::from_str(e).unwrap())
                    .await
                    .unwrap();
            }
        } else {
            for chunk in events.chunks(10) {
                self.ingest.handle_sqs(sqs_batch(chunk)).await;
            }
        }
        let ingest_ms = started.elapsed().as_secs_f64() * 1000.0;
        let jobs = self.stack.drain(&self.p.work).await;
        let started = Instant::now();
        for chunk in jobs.chunks(10) {
            let r = self.replicator.handle_batch(sqs_batch(chunk)).await;
            assert!(r.batch_item_failures.is_empty());
        }
        let replicate_ms = started.elapsed().as_secs_f64() * 1000.0;
        tally.count(&self.s3_log, objects);
        tally.count(&self.sqs_log, objects);
        let n = objects as f64;
        let (ingest_calls, events_per_object) = (
            if direct {
                events.len()
            } else {
                events.len().div_ceil(10)
            },
            events.len() as f64 / n,
        );
        if !direct {
            tally.add("SQS SendMessage (S3, notification)", events_per_object, SQS);
            tally.add(
                "SQS trigger receive + delete (events)",
                0.2 * events_per_object,
                SQS,
            );
        }
        tally.add(
            "SQS trigger receive + delete (work)",
            0.2 * jobs.len() as f64 / n,
            SQS,
        );
        let invocations = (ingest_calls + jobs.len().div_ceil(10)) as f64 / n;
        tally.add("Lambda invocations", invocations, LAMBDA_INVOKE);
        tally.lambda_ms = (ingest_ms + replicate_ms) / n;
        tally.dollars += tally.lambda_ms * LAMBDA_MS_128;
    }
}

impl Run {
    /// A backfill of the whole bucket: its list tasks and the jobs they send, run by
    /// the replicate handler in batches of ten until the work queue is empty.
    async fn drive_backfill(&mut self, tally: &mut Tally, objects: usize) {
        use replicator::operator::backfill::{self, Scope};
        let scope = Scope {
            split: backfill::DEFAULT_SPLIT,
            ..Scope::default()
        };
        let tasks =
            backfill::root_tasks(&self.ingest.config, &scope, &backfill::new_id()).expect("scope");
        backfill::start(&self.ingest, &tasks).await.expect("start");
        let started = Instant::now();
        let mut messages = 0;
        loop {
            let bodies = self.stack.drain(&self.p.work).await;
            if bodies.is_empty() {
                break;
            }
            messages += bodies.len();
            for chunk in bodies.chunks(10) {
                let r = self.replicator.handle_batch(sqs_batch(chunk)).await;
                assert!(r.batch_item_failures.is_empty());
            }
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        tally.count(&self.s3_log, objects);
        tally.count(&self.sqs_log, objects);
        let n = objects as f64;
        tally.add(
            "SQS trigger receive + delete (work)",
            0.2 * messages as f64 / n,
            SQS,
        );
        tally.add(
            "Lambda invocations",
            messages.div_ceil(10) as f64 / n,
            LAMBDA_INVOKE,
        );
        tally.lambda_ms = ms / n;
        tally.dollars += tally.lambda_ms * LAMBDA_MS_128;
    }
}

/// Puts each key and sends the event S3 would for it (SeaweedFS sends none).
async fn put_with_events(run: &Run, keys: &[String], body: &[u8]) {
    for key in keys {
        let out = run
            .stack
            .s3
            .put_object()
            .bucket(&run.p.source)
            .key(key)
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .send()
            .await
            .expect("put");
        let record = integration_tests::history::record(
            "ObjectCreated:Put",
            &run.p.source,
            key,
            Some(body.len() as u64),
            out.e_tag(),
            out.version_id(),
            "0",
        );
        run.stack
            .send(
                &run.p.events,
                &integration_tests::history::notification(&[record]),
            )
            .await;
    }
}

/// The exact path, on a server that checks conditional writes (SeaweedFS): new keys,
/// then the same keys overwritten, for each order of requests a destination may use.
async fn exact_rows(n: usize, body: &[u8]) {
    let fast = Stack::fast().await;
    println!();
    println!("exact ordering (conditional writes), SeaweedFS, {n} objects per case:");
    for order in ["adaptive", "replica-first", "new-keys-first"] {
        let destination = format!(
            r#"{{"Bucket": "DST", "Replicator": {{"AclMode": "none", "WriteOrder": "{order}"}}}}"#
        );
        let mut run = Run::on(&fast, &destination, None, false).await;
        let keys: Vec<String> = (0..n).map(|i| format!("o/{i:05}")).collect();
        for (case, body) in [("new keys", body.to_vec()), ("overwrites", body.repeat(2))] {
            put_with_events(&run, &keys, &body).await;
            let mut tally = Tally::default();
            run.drive(&mut tally, n, false).await;
            report(&format!("put, {case}, {order}"), &tally);
        }
    }
}

fn report(name: &str, t: &Tally) {
    let per_million = t.dollars * 1e6;
    println!(
        "{name:<44} ${per_million:>6.2} per million  {:>5.2}x native (${:.2})  Lambda {:.1} ms/object here",
        per_million / (NATIVE * 1e6),
        NATIVE * 1e6,
        t.lambda_ms
    );
    for (label, n) in &t.requests {
        println!("    {label:<42} {n:>5.2} per object");
    }
}

#[tokio::main]
async fn main() {
    let stack = Stack::main().await;
    let other = Stack::other_provider().await;
    let n = objects();
    let body = vec![b'x'; 1024];
    println!("what a replication costs: {n} small objects per case, requests per object and $ per million (us-east-1 list prices)");
    exact_rows(n, &body).await;
    println!();
    println!("moto (ignores CopyObject's conditions: copies there are ordered by the fallback):");

    // Existing objects: a backfill of a bucket nothing has replicated yet, then the same
    // backfill again (every replica up to date).
    {
        let mut run = Run::new(&stack, r#"{"Bucket": "DST"}"#, None).await;
        for i in 0..n {
            stack
                .put(&run.p.source, &format!("o/{:02}/{i:05}", i % 10), &body)
                .await;
        }
        // The bucket's own notifications are not what a backfill replicates from.
        stack.drain(&run.p.events).await;
        run.s3_log.take();
        run.sqs_log.take();
        let mut tally = Tally::default();
        run.drive_backfill(&mut tally, n).await;
        report("backfill, nothing replicated yet", &tally);
        let mut tally = Tally::default();
        run.drive_backfill(&mut tally, n).await;
        report("backfill again, replicas up to date", &tally);
    }

    for (name, destination, direct, remote) in [
        (
            "put, same endpoint, ACLs disabled",
            r#"{"Bucket": "DST"}"#,
            false,
            false,
        ),
        (
            "put, same endpoint, ACLs disabled, direct",
            r#"{"Bucket": "DST"}"#,
            true,
            false,
        ),
        (
            "put, same endpoint, ACLs in use (copy)",
            r#"{"Bucket": "DST", "Replicator": {"AclMode": "copy"}}"#,
            false,
            false,
        ),
        ("put, other endpoint", "OTHER", false, true),
    ] {
        let destination = if remote {
            format!(
                r#"{{"Bucket": "DST", "Replicator": {{"EndpointUrl": "{}", "ForcePathStyle": true, "AclMode": "none", "Credentials": {{"DefaultChain": true}}}}}}"#,
                other.endpoint
            )
        } else {
            destination.to_string()
        };
        let mut run = Run::new(&stack, &destination, remote.then_some(&other)).await;
        // Only creations are counted here; moto also reports a tagging event per PUT.
        stack
            .notify_only(&run.p.source, &run.p.events, &["s3:ObjectCreated:*"])
            .await;
        stack.drain(&run.p.events).await;
        for i in 0..n {
            stack.put(&run.p.source, &format!("o/{i:05}"), &body).await;
        }
        let mut tally = Tally::default();
        run.drive(&mut tally, n, direct).await;
        report(name, &tally);

        if name == "put, same endpoint, ACLs disabled" {
            // Deletes and tag changes of the same objects, through the same handlers.
            stack
                .notify_only(&run.p.source, &run.p.events, &["s3:ObjectTagging:*"])
                .await;
            stack.drain(&run.p.events).await;
            for i in 0..n {
                stack
                    .set_tag(&run.p.source, &format!("o/{i:05}"), ("team", "blue"))
                    .await;
            }
            let mut tally = Tally::default();
            run.drive(&mut tally, n, false).await;
            report("tag change", &tally);
            stack
                .notify_only(&run.p.source, &run.p.events, &["s3:ObjectRemoved:*"])
                .await;
            stack.drain(&run.p.events).await;
            for i in 0..n {
                stack.delete(&run.p.source, &format!("o/{i:05}")).await;
            }
            let mut tally = Tally::default();
            run.drive(&mut tally, n, false).await;
            report("delete", &tally);
        }
    }
}
