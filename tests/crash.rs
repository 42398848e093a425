//! Crash safety through the real binary.
//!
//! Each test starts `mos-gateway run` with its own configuration file and data directory,
//! streams running-order edits over one upper-port connection (every message with a fresh
//! messageID), and stops the process from another thread while the stream is going on:
//! `kill -9` at varied moments, or SIGTERM / SIGINT. The gateway is then restarted on the
//! same data directory and the running order it returns for roReq is compared with the one
//! the crate's pure model computes from the acknowledged edits. The message that was in
//! flight when the process died may or may not be there; nothing else may differ. Retrying
//! that message (same messageID, same content) must be acknowledged and applied once.

#[path = "common/process.rs"]
mod process;
use process::{Process, config_text, start_gateway};
#[path = "common/blocking_client.rs"]
mod blocking_client;
use blocking_client::Client;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mos_gateway::mos::structures::RunningOrder;
use mos_gateway::mos::{Message, Mos, ParseOptions};
use mos_gateway::rundown::{Applied, Rundowns, edit_from_message};

const MOS_ID: &str = "nmos.gateway.mos";
const NCS_ID: &str = "ENPS.NCS";
const RO: &str = "RO-CRASH";

// ---------------------------------------------------------------------------------------
// The gateway process.

/// Starts the binary on `dir/data` with a fresh config file and free ports.
fn start(dir: &Path) -> Process {
    let data_dir = dir.join("data");
    start_gateway(dir, &[], |ports| config_text(&data_dir, ports, ""))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// SIGKILL (`Child::kill`).
    Kill,
    /// SIGTERM through `kill -TERM`.
    Term,
    /// SIGINT through `kill -INT`.
    Int,
}

/// How the process ended.
struct Ended {
    process: Process,
    status: ExitStatus,
    /// From the signal to the exit.
    took: Duration,
}

/// On another thread: once `acked` reaches `after` (or `give_up` is set, or 60 s have
/// passed), waits `jitter` more, then stops the process with `how` and waits for it to
/// exit.
fn stop_later(
    mut process: Process,
    how: Stop,
    acked: Arc<AtomicUsize>,
    after: usize,
    jitter: Duration,
    give_up: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Ended> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.load(Ordering::SeqCst) < after
            && !give_up.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        // The moment within the round trip: spin so that microseconds count.
        let t = Instant::now();
        while t.elapsed() < jitter {
            std::hint::spin_loop();
        }
        let signalled = Instant::now();
        let status = match how {
            Stop::Kill => {
                process.child.kill().unwrap();
                process.child.wait().unwrap()
            }
            Stop::Term | Stop::Int => {
                let flag = if how == Stop::Term { "-TERM" } else { "-INT" };
                let pid = process.child.id().to_string();
                let sent = Command::new("kill").args([flag, &pid]).status().unwrap();
                assert!(sent.success(), "kill {flag} {pid} failed");
                process
                    .wait_exit(Duration::from_secs(20))
                    .unwrap_or_else(|| {
                        panic!(
                            "no exit within 20 s of {flag}:\n{}",
                            std::fs::read_to_string(&process.log).unwrap_or_default()
                        )
                    })
            }
        };
        Ended {
            took: signalled.elapsed(),
            process,
            status,
        }
    })
}

// ---------------------------------------------------------------------------------------
// The NCS client.

/// roReq: the running order, or `None` when the gateway does not hold it.
fn running_order(client: &mut Client, next_id: &mut u64) -> Option<RunningOrder> {
    let (id, text) = envelope(next_id, &format!("<roReq><roID>{RO}</roID></roReq>"));
    match client.request(&id, &text).expect("roReq answered").message {
        Message::RoList(list) => Some(list.0),
        Message::RoAck(a) if !a.is_ok() => None,
        other => panic!("expected roList, got {other:?}"),
    }
}

fn envelope(next_id: &mut u64, body: &str) -> (String, String) {
    *next_id += 1;
    let id = next_id.to_string();
    let text = format!(
        "<mos><mosID>{MOS_ID}</mosID><ncsID>{NCS_ID}</ncsID><messageID>{id}</messageID>{body}</mos>"
    );
    (id, text)
}

// ---------------------------------------------------------------------------------------
// The edit stream and its expected result.

/// A small deterministic generator (xorshift64*), so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One message of the stream, checked against the model before it is sent.
struct Sent {
    id: String,
    text: String,
    applied: Applied,
}

/// What the NCS side knows: the model of every acknowledged edit, and how to make more.
struct Ncs {
    model: Rundowns,
    rng: Rng,
    next_id: u64,
    next_story: usize,
    next_item: usize,
    /// Acknowledged edits so far (over all connections).
    acked: Arc<AtomicUsize>,
}

impl Ncs {
    fn new(seed: u64) -> Self {
        Self {
            model: Rundowns::new(),
            rng: Rng(seed | 1),
            next_id: 1000,
            next_story: 0,
            next_item: 0,
            acked: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn item(&mut self) -> String {
        self.next_item += 1;
        let n = self.next_item;
        format!(
            "<item><itemID>I{n}</itemID><itemSlug>Item {n}</itemSlug><objID>OBJ-{n}</objID><mosID>{MOS_ID}</mosID></item>"
        )
    }

    fn story(&mut self, items: usize) -> String {
        self.next_story += 1;
        let n = self.next_story;
        let items: String = (0..items).map(|_| self.item()).collect();
        format!("<story><storyID>S{n}</storyID><storySlug>Story {n}</storySlug>{items}</story>")
    }

    /// The next edit's body: roCreate first, then a mix of legacy and roElementAction
    /// edits that the current state accepts.
    fn next_body(&mut self) -> String {
        let Some(ro) = self.model.get(RO) else {
            let stories: String = (0..12).map(|i| self.story(i % 3)).collect();
            return format!(
                "<roCreate><roID>{RO}</roID><roSlug>Crash show</roSlug>{stories}</roCreate>"
            );
        };
        let stories: Vec<(String, Vec<String>)> = ro
            .stories()
            .map(|s| {
                (
                    s.story.id.clone(),
                    s.story.items.iter().map(|i| i.id.clone()).collect(),
                )
            })
            .collect();
        let pick = |rng: &mut Rng| stories[rng.below(stories.len())].clone();
        let op = if stories.len() < 2 {
            0
        } else {
            self.rng.below(12)
        };
        match op {
            0 => {
                let k = self.rng.below(3);
                let s = self.story(k);
                format!("<roStoryAppend><roID>{RO}</roID>{s}</roStoryAppend>")
            }
            1 => {
                let (target, _) = pick(&mut self.rng);
                let s = self.story(1);
                format!(
                    "<roElementAction operation=\"INSERT\"><roID>{RO}</roID><element_target><storyID>{target}</storyID></element_target><element_source>{s}</element_source></roElementAction>"
                )
            }
            2 => {
                let (a, _) = pick(&mut self.rng);
                let (b, _) = pick(&mut self.rng);
                let sources: Vec<String> = if a == b { vec![a] } else { vec![a, b] };
                let target = if self.rng.below(4) == 0 {
                    String::new()
                } else {
                    let others: Vec<&String> = stories
                        .iter()
                        .map(|(id, _)| id)
                        .filter(|id| !sources.contains(id))
                        .collect();
                    others[self.rng.below(others.len())].clone()
                };
                let src: String = sources
                    .iter()
                    .map(|s| format!("<storyID>{s}</storyID>"))
                    .collect();
                format!(
                    "<roElementAction operation=\"MOVE\"><roID>{RO}</roID><element_target><storyID>{target}</storyID></element_target><element_source>{src}</element_source></roElementAction>"
                )
            }
            3 => {
                let (story, items) = pick(&mut self.rng);
                let before = if items.is_empty() || self.rng.below(3) == 0 {
                    String::new()
                } else {
                    items[self.rng.below(items.len())].clone()
                };
                let item = self.item();
                format!(
                    "<roItemInsert><roID>{RO}</roID><storyID>{story}</storyID><itemID>{before}</itemID>{item}</roItemInsert>"
                )
            }
            4 => {
                let (story, items) = pick(&mut self.rng);
                let before = if items.is_empty() {
                    String::new()
                } else {
                    items[self.rng.below(items.len())].clone()
                };
                let item = self.item();
                format!(
                    "<roElementAction operation=\"INSERT\"><roID>{RO}</roID><element_target><storyID>{story}</storyID><itemID>{before}</itemID></element_target><element_source>{item}</element_source></roElementAction>"
                )
            }
            5 => {
                let (story, _) = pick(&mut self.rng);
                let n = self.rng.next() % 1000;
                format!(
                    "<roStorySend><roID>{RO}</roID><storyID>{story}</storyID><storySlug>Body {n}</storySlug><storyBody><p>Take {n}.</p></storyBody></roStorySend>"
                )
            }
            6 => {
                let (a, _) = pick(&mut self.rng);
                let others: Vec<&String> = stories
                    .iter()
                    .map(|(id, _)| id)
                    .filter(|id| **id != a)
                    .collect();
                let b = others[self.rng.below(others.len())];
                format!(
                    "<roElementAction operation=\"SWAP\"><roID>{RO}</roID><element_source><storyID>{a}</storyID><storyID>{b}</storyID></element_source></roElementAction>"
                )
            }
            7 if stories.len() > 8 => {
                let (story, _) = pick(&mut self.rng);
                format!(
                    "<roStoryDelete><roID>{RO}</roID><storyID>{story}</storyID></roStoryDelete>"
                )
            }
            8 => {
                let with_items: Vec<&(String, Vec<String>)> =
                    stories.iter().filter(|(_, i)| i.len() >= 2).collect();
                if with_items.is_empty() {
                    let (story, _) = pick(&mut self.rng);
                    let item = self.item();
                    return format!(
                        "<roItemInsert><roID>{RO}</roID><storyID>{story}</storyID><itemID></itemID>{item}</roItemInsert>"
                    );
                }
                let (story, items) = with_items[self.rng.below(with_items.len())];
                let moved = self.rng.below(items.len());
                let target = (moved + 1 + self.rng.below(items.len() - 1)) % items.len();
                format!(
                    "<roElementAction operation=\"MOVE\"><roID>{RO}</roID><element_target><storyID>{story}</storyID><itemID>{}</itemID></element_target><element_source><itemID>{}</itemID></element_source></roElementAction>",
                    items[target], items[moved]
                )
            }
            10 => self.large_replace(&stories),
            _ => {
                let s = self.story(2);
                format!("<roStoryAppend><roID>{RO}</roID>{s}</roStoryAppend>")
            }
        }
    }

    /// A roReplace of more than 8 KB, which the gateway keeps in its inbox while it parses
    /// it (and answers through that path): the order's stories, but for the last big one,
    /// and a new big story.
    fn large_replace(&mut self, stories: &[(String, Vec<String>)]) -> String {
        let mut body = String::new();
        for (story, items) in stories.iter().filter(|(_, items)| items.len() <= 20) {
            let items: String = items
                .iter()
                .map(|i| {
                    format!(
                        "<item><itemID>{i}</itemID><objID>OBJ-{i}</objID><mosID>{MOS_ID}</mosID></item>"
                    )
                })
                .collect();
            body.push_str(&format!("<story><storyID>{story}</storyID>{items}</story>"));
        }
        body.push_str(&self.story(80));
        let text =
            format!("<roReplace><roID>{RO}</roID><roSlug>Crash show</roSlug>{body}</roReplace>");
        assert!(text.len() > 8 * 1024, "not large enough for the inbox");
        text
    }

    /// The next message, with the model's view of its effect.
    fn next_message(&mut self) -> Sent {
        let body = self.next_body();
        let (id, text) = envelope(&mut self.next_id, &body);
        let applied = self.applied(&text);
        Sent { id, text, applied }
    }

    /// What `text` does to the model (it must be accepted).
    fn applied(&self, text: &str) -> Applied {
        let mos = Mos::parse(text, ParseOptions::strict())
            .unwrap_or_else(|e| panic!("test message invalid: {}\n{text}", e.error))
            .mos;
        let (ro_id, edit) = edit_from_message(&mos.message)
            .expect("a running-order edit")
            .unwrap_or_else(|e| panic!("{}: {text}", e.reason()));
        self.model
            .apply(&ro_id, &edit)
            .unwrap_or_else(|e| panic!("the model refuses {text}: {}", e.reason()))
    }

    /// Streams edits until the connection fails (the process was stopped); returns the
    /// message that got no reply, if one was sent or being sent. Every reply must be
    /// roAck OK; each one is applied to the model.
    fn stream_until_closed(&mut self, client: &mut Client, limit: usize) -> Option<Sent> {
        for _ in 0..limit {
            let sent = self.next_message();
            match client.request(&sent.id, &sent.text) {
                Ok(reply) => {
                    match &reply.message {
                        Message::RoAck(a) if a.is_ok() => {}
                        other => panic!("expected roAck OK for {}, got {other:?}", sent.text),
                    }
                    self.model.commit(RO, sent.applied);
                    self.acked.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => return Some(sent),
            }
        }
        panic!("the gateway was still answering after {limit} edits");
    }

    fn expected(&self) -> Option<RunningOrder> {
        self.model.get(RO).map(|r| r.to_running_order())
    }

    fn expected_with(&self, sent: &Sent) -> Option<RunningOrder> {
        sent.applied.rundown().map(|r| r.to_running_order())
    }
}

/// Story and item IDs, for readable failures.
fn outline(ro: &Option<RunningOrder>) -> String {
    match ro {
        None => "(no running order)".into(),
        Some(ro) => ro
            .stories
            .iter()
            .map(|s| {
                let items: Vec<&str> = s.items.iter().map(|i| i.id.as_str()).collect();
                format!("{}[{}]", s.id, items.join(","))
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

// ---------------------------------------------------------------------------------------
// The scenario.

/// One stop: how, after how many acknowledged edits (counted from this start), and how
/// long to wait after that before signalling.
struct Moment {
    how: Stop,
    after_acks: usize,
    jitter: Duration,
}

/// Streams edits, stops the process at each moment, restarts it on the same data
/// directory, and checks the running order and the retry of the unanswered message.
fn scenario(seed: u64, moments: &[Moment]) {
    let dir = tempfile::tempdir().unwrap();
    let mut ncs = Ncs::new(seed);
    let mut process = start(dir.path());
    for (round, m) in moments.iter().enumerate() {
        let mut client = Client::connect(process.upper);
        let give_up = Arc::new(AtomicBool::new(false));
        let base = ncs.acked.load(Ordering::SeqCst);
        let stopper = stop_later(
            process,
            m.how,
            ncs.acked.clone(),
            base + m.after_acks,
            m.jitter,
            give_up.clone(),
        );
        let streamed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ncs.stream_until_closed(&mut client, m.after_acks + 20_000)
        }));
        give_up.store(true, Ordering::SeqCst);
        let ended = stopper.join().expect("stopper thread");
        let pending = match streamed {
            Ok(p) => p,
            Err(e) => {
                eprintln!("gateway log:\n{}", ended.process.log_text());
                std::panic::resume_unwind(e);
            }
        };
        let acked_now = ncs.acked.load(Ordering::SeqCst) - base;
        let log = ended.process.log_text();
        eprintln!(
            "round {round} ({:?} after {} acks + {:?}): {acked_now} edits acked; status {}; exit {:?} after the signal; in flight: {}",
            m.how,
            m.after_acks,
            m.jitter,
            ended.status,
            ended.took,
            pending.as_ref().map_or("none", |p| p.id.as_str())
        );
        assert!(acked_now >= m.after_acks, "stopped too early");
        match m.how {
            Stop::Kill => assert_eq!(ended.status.signal(), Some(9), "killed by SIGKILL"),
            Stop::Term | Stop::Int => {
                assert!(
                    ended.status.success(),
                    "{:?}: exit status {}\n{log}",
                    m.how,
                    ended.status
                );
                assert!(
                    ended.took < Duration::from_secs(5),
                    "{:?}: took {:?} to exit\n{log}",
                    m.how,
                    ended.took
                );
                assert!(
                    log.lines().any(|l| l.trim_end().ends_with(" stopped")),
                    "no \"stopped\" in the log:\n{log}"
                );
                assert!(!log.contains("did not finish"), "{log}");
            }
        }
        drop(ended);

        // Restart on the same data directory.
        process = start(dir.path());
        let mut client = Client::connect(process.upper);
        let got = running_order(&mut client, &mut ncs.next_id);
        let without = ncs.expected();
        let Some(pending) = pending else {
            assert_eq!(got, without, "after {:?}", m.how);
            continue;
        };
        let with = ncs.expected_with(&pending);
        let was_applied = if got == without {
            false
        } else if got == with {
            true
        } else {
            panic!(
                "round {round}: the restored running order is neither the acknowledged one nor that plus the message in flight\n got:      {}\n acked:    {}\n +pending: {}\n{}",
                outline(&got),
                outline(&without),
                outline(&with),
                process.log_text()
            );
        };
        eprintln!(
            "round {round}: message {} in flight was applied: {was_applied}",
            pending.id
        );
        // A clean stop finishes what it took in: a message it applied was also answered.
        assert!(
            !(was_applied && matches!(m.how, Stop::Term | Stop::Int)),
            "{:?}: message {} applied but not answered",
            m.how,
            pending.id
        );

        // The retry of the unanswered message: acknowledged, and applied exactly once.
        let reply = client
            .request(&pending.id, &pending.text)
            .expect("retry answered");
        match &reply.message {
            Message::RoAck(a) if a.is_ok() => {}
            other => panic!("retry of {} not acknowledged: {other:?}", pending.id),
        }
        if was_applied {
            assert!(
                process.log_text().contains("not applied twice"),
                "the retry was not recognised as one"
            );
        }
        ncs.model.commit(RO, pending.applied);
        ncs.acked.fetch_add(1, Ordering::SeqCst);
        let got = running_order(&mut client, &mut ncs.next_id);
        assert_eq!(
            got,
            ncs.expected(),
            "after the retry\n got:      {}\n expected: {}",
            outline(&got),
            outline(&ncs.expected())
        );
    }
    // The restored gateway keeps taking edits.
    let mut client = Client::connect(process.upper);
    for _ in 0..5 {
        let sent = ncs.next_message();
        let reply = client.request(&sent.id, &sent.text).unwrap();
        assert!(matches!(&reply.message, Message::RoAck(a) if a.is_ok()));
        ncs.model.commit(RO, sent.applied);
    }
    assert_eq!(running_order(&mut client, &mut ncs.next_id), ncs.expected());
}

fn kill(after_acks: usize, jitter_us: u64) -> Moment {
    Moment {
        how: Stop::Kill,
        after_acks,
        jitter: Duration::from_micros(jitter_us),
    }
}

#[test]
fn kill_9_early_then_again_after_the_restart() {
    scenario(0x5eed_0001, &[kill(3, 0), kill(70, 250)]);
}

#[test]
fn kill_9_mid_stream_at_varied_moments_of_a_round_trip() {
    scenario(0x5eed_0002, &[kill(130, 40), kill(25, 900), kill(1, 2_000)]);
}

#[test]
fn kill_9_after_the_journal_was_folded_into_a_snapshot() {
    // A snapshot is taken every 256 journalled edits.
    scenario(0x5eed_0003, &[kill(275, 120)]);
}

#[test]
fn kill_9_at_many_moments_on_one_data_directory() {
    // From roCreate itself in flight to deep in the journal, with waits from 0 to 3 ms
    // after the ack count is reached so that the kill lands in different phases of a
    // round trip (before the read, during the commit, between commit and reply).
    scenario(
        0x5eed_0006,
        &[
            kill(0, 500),
            kill(17, 0),
            kill(90, 1_500),
            kill(5, 60),
            kill(200, 10),
            kill(33, 3_000),
        ],
    );
}

#[test]
fn sigterm_stops_cleanly_and_keeps_every_acknowledged_edit() {
    scenario(
        0x5eed_0004,
        &[Moment {
            how: Stop::Term,
            after_acks: 60,
            jitter: Duration::from_micros(300),
        }],
    );
}

#[test]
fn sigint_stops_cleanly_and_keeps_every_acknowledged_edit() {
    scenario(
        0x5eed_0005,
        &[Moment {
            how: Stop::Int,
            after_acks: 40,
            jitter: Duration::from_micros(0),
        }],
    );
}
