use crate::backends::{Backend, conformance};
use jiff::SignedDuration;
use shared::ports::{ManualClock, OutgoingMessage, QueueDepth, ReceivedMessage, WorkQueue};
use std::collections::BTreeSet;
use std::time::Duration;

conformance!(
    a_batch_larger_than_ten_is_sent_and_received_whole,
    an_undeleted_message_returns_after_its_visibility_timeout_then_is_parked,
    changing_visibility_hides_or_releases_a_message,
    dead_letters_are_listed_and_redriven_by_id_or_all,
    a_permanent_failure_is_parked_at_once,
    messages_over_256_kib_together_are_sent_in_as_many_batches_as_fit,
);

const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(60);
const NO_WAIT: Duration = Duration::ZERO;
/// Tries at a message's return, each a long poll of `SHORT`: a deadline only
/// a message that never comes back reaches.
const POLLS: usize = 30;

async fn receive_all(q: &dyn WorkQueue, expected: usize) -> Vec<ReceivedMessage> {
    let mut out = Vec::new();
    for _ in 0..20 {
        if out.len() >= expected {
            break;
        }
        out.extend(q.receive(10, LONG, SHORT).await.unwrap());
    }
    out
}

async fn a_batch_larger_than_ten_is_sent_and_received_whole(b: Backend) {
    let q = b.queue(3).await;
    let bodies: Vec<String> = (0..25).map(|i| format!("{{\"n\":{i}}}")).collect();
    let msgs: Vec<_> = bodies.iter().map(OutgoingMessage::new).collect();
    let ids = q.send_batch(&msgs).await.unwrap();
    assert_eq!(ids.len(), 25);
    assert_eq!(
        ids.iter().collect::<BTreeSet<_>>().len(),
        25,
        "ids are distinct"
    );

    let got = receive_all(q.as_ref(), 25).await;
    let received: BTreeSet<_> = got.iter().map(|m| m.body.clone()).collect();
    assert_eq!(received, bodies.iter().cloned().collect::<BTreeSet<_>>());
    assert!(got.iter().all(|m| m.receive_count == 1));
    for m in &got {
        q.delete(&m.receipt).await.unwrap();
    }
    assert!(q.receive(10, LONG, NO_WAIT).await.unwrap().is_empty());
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
}

/// Receives until a message comes back, or `POLLS` tries have passed,
/// moving the manual clock on by `SHORT` before each try: the embedded queue
/// goes by that clock, SQS by its own time, which each try's long poll lets
/// pass. Receives with a `SHORT` visibility.
async fn receive_when_back(q: &dyn WorkQueue, clock: &ManualClock) -> Vec<ReceivedMessage> {
    for _ in 0..POLLS {
        clock.advance(SignedDuration::try_from(SHORT).unwrap());
        let got = q.receive(1, SHORT, SHORT).await.unwrap();
        if !got.is_empty() {
            return got;
        }
    }
    Vec::new()
}

/// Orderings only, no durations: hidden right after a receive; back by
/// itself once its timeout has run out, however long that took; parked at
/// the receive after the last one allowed.
async fn an_undeleted_message_returns_after_its_visibility_timeout_then_is_parked(b: Backend) {
    let (b, clock) = b.with_manual_clock();
    let q = b.queue(2).await;
    q.send_batch(&[OutgoingMessage::new("poison")])
        .await
        .unwrap();

    // Received with a timeout no run outlasts, so "right after" is certain.
    let first = q.receive(1, LONG, SHORT).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receive_count, 1);
    assert!(
        q.receive(1, LONG, NO_WAIT).await.unwrap().is_empty(),
        "hidden while in flight"
    );
    assert_eq!(q.depth().await.unwrap().in_flight, 1);

    // Its timeout cut short and never renewed: it comes back by itself.
    q.change_visibility(&first[0].receipt, SHORT).await.unwrap();
    let second = receive_when_back(q.as_ref(), &clock).await;
    assert_eq!(second.len(), 1, "back after its visibility timeout");
    assert_eq!(
        (second[0].body.as_str(), second[0].receive_count),
        ("poison", 2)
    );
    assert_eq!(second[0].id, first[0].id);

    // Received again with a short timeout: when that runs out, the third
    // receive would exceed the limit of two, so it is parked instead.
    let mut dead = Vec::new();
    for _ in 0..POLLS {
        clock.advance(SignedDuration::try_from(SHORT).unwrap());
        assert!(
            q.receive(1, SHORT, SHORT).await.unwrap().is_empty(),
            "never delivered a third time"
        );
        dead = q.dead_letters(10).await.unwrap();
        if !dead.is_empty() {
            break;
        }
    }
    assert_eq!(dead.len(), 1, "parked once its timeout ran out");
    assert_eq!(dead[0].body, "poison");
    let depth = q.depth().await.unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 1));
}

async fn changing_visibility_hides_or_releases_a_message(b: Backend) {
    let q = b.queue(5).await;
    q.send_batch(&[OutgoingMessage::new("retry-me")])
        .await
        .unwrap();
    let m = q.receive(1, LONG, SHORT).await.unwrap().remove(0);
    // Back off to zero: visible again at once, as after a transient failure.
    q.change_visibility(&m.receipt, Duration::ZERO)
        .await
        .unwrap();
    let again = q.receive(1, LONG, SHORT).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].receive_count, 2);
    // And a Retry-After-style delay keeps it hidden.
    q.change_visibility(&again[0].receipt, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(q.receive(1, LONG, NO_WAIT).await.unwrap().is_empty());
    q.delete(&again[0].receipt).await.unwrap();
}

async fn dead_letters_are_listed_and_redriven_by_id_or_all(b: Backend) {
    let q = b.queue(1).await;
    let msgs: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(OutgoingMessage::new)
        .collect();
    q.send_batch(&msgs).await.unwrap();
    // Receive each once and let it go: with a limit of one receive, the next
    // receive parks all three.
    let got = receive_all(q.as_ref(), 3).await;
    assert_eq!(got.len(), 3);
    for m in &got {
        q.change_visibility(&m.receipt, Duration::ZERO)
            .await
            .unwrap();
    }
    assert!(q.receive(10, LONG, SHORT).await.unwrap().is_empty());

    let dead = q.dead_letters(10).await.unwrap();
    let bodies: BTreeSet<_> = dead.iter().map(|d| d.body.as_str()).collect();
    assert_eq!(bodies, BTreeSet::from(["a", "b", "c"]));
    // Listing does not remove or hide them.
    assert_eq!(q.dead_letters(10).await.unwrap().len(), 3);

    let b_id = dead.iter().find(|d| d.body == "b").unwrap().id.clone();
    assert_eq!(q.redrive(Some(&[b_id])).await.unwrap(), 1);
    let back = q.receive(10, LONG, SHORT).await.unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].body.as_str(), back[0].receive_count), ("b", 1));
    q.delete(&back[0].receipt).await.unwrap();

    assert_eq!(q.redrive(None).await.unwrap(), 2);
    assert!(q.dead_letters(10).await.unwrap().is_empty());
    let rest: BTreeSet<_> = receive_all(q.as_ref(), 2)
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(rest, BTreeSet::from(["a".to_string(), "c".to_string()]));
}

async fn a_permanent_failure_is_parked_at_once(b: Backend) {
    let q = b.queue(5).await;
    q.send_batch(&[
        OutgoingMessage::new("invalid account"),
        OutgoingMessage::new("fine"),
    ])
    .await
    .unwrap();
    let got = receive_all(q.as_ref(), 2).await;
    let bad = got.iter().find(|m| m.body == "invalid account").unwrap();
    q.park(bad).await.unwrap();
    let dead = q.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "invalid account");
    let good = got.iter().find(|m| m.body == "fine").unwrap();
    q.change_visibility(&good.receipt, Duration::ZERO)
        .await
        .unwrap();
    let again = q.receive(10, LONG, SHORT).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "only the other message is still in the queue"
    );
    assert_eq!(again[0].body, "fine");
}

/// In the deployed stack parking uses the dead-letter queue URL from the
/// environment (`HUB_<QUEUE>_DLQ_URL`): it needs only `sqs:SendMessage` on
/// it, not `sqs:GetQueueAttributes` and `sqs:GetQueueUrl` to look it up. A
/// queue with no RedrivePolicy shows which path was taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_parking_uses_the_dead_letter_queue_it_is_given_without_looking_it_up() {
    use shared::adapters::aws::{SqsQueue, schema};
    let b = Backend::aws().await;
    let client = b.sqs_client().unwrap();
    let main = schema::create_queue(&client, &Backend::unique("main"))
        .await
        .unwrap();
    let dlq = schema::create_queue(&client, &Backend::unique("dlq"))
        .await
        .unwrap();
    let looked_up = SqsQueue::new(client.clone(), "looked-up", &main);
    looked_up
        .send_batch(&[OutgoingMessage::new("{\"poison\":1}")])
        .await
        .unwrap();
    let m = receive_all(&looked_up, 1).await.remove(0);
    let err = looked_up.park(&m).await.unwrap_err();
    assert!(err.to_string().contains("no RedrivePolicy"), "{err}");
    looked_up
        .change_visibility(&m.receipt, Duration::ZERO)
        .await
        .unwrap();

    let given = SqsQueue::new(client.clone(), "given", &main).with_dlq_url(Some(dlq.clone()));
    let m = receive_all(&given, 1).await.remove(0);
    given.park(&m).await.unwrap();
    let parked = receive_all(&SqsQueue::new(client, "dlq", &dlq), 1).await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].body, "{\"poison\":1}");
    assert!(given.receive(10, LONG, NO_WAIT).await.unwrap().is_empty());
}

/// SQS takes at most 256 KiB in one `SendMessageBatch`, and one message of
/// at most that: ten messages of 60 kB go out in three requests; one over
/// the limit is refused with the reason, and nothing of its batch is sent.
async fn messages_over_256_kib_together_are_sent_in_as_many_batches_as_fit(b: Backend) {
    let q = b.queue(5).await;
    let bodies: Vec<String> = (0..10)
        .map(|i| format!("{i:02}{}", "x".repeat(60_000)))
        .collect();
    let msgs: Vec<OutgoingMessage> = bodies.iter().map(OutgoingMessage::new).collect();
    let ids = q.send_batch(&msgs).await.unwrap();
    assert_eq!(ids.len(), 10);
    let got = receive_all(q.as_ref(), 10).await;
    let mut seen: Vec<&str> = got.iter().map(|m| &m.body[..2]).collect();
    seen.sort();
    assert_eq!(seen, (0..10).map(|i| format!("{i:02}")).collect::<Vec<_>>());

    let q = b.queue(5).await;
    let huge = OutgoingMessage::new("y".repeat(shared::ports::MAX_MESSAGE_BYTES + 1));
    let err = q
        .send_batch(&[OutgoingMessage::new("small"), huge])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("262144-byte limit"), "{err}");
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
}
