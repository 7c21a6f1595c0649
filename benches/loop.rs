//! The loop bench (issue 16 item 4; DESIGN §9 "Loop"): the real stages of
//! the loop over six simulated weeks of CLINC150 traffic, on SQLite in a
//! temporary data dir, to see whether the loop learns and whether what it
//! says about itself is true.
//!
//! Scenario, per seed: 10 utterances of each of the 151 intents (`oos`
//! included) drawn from CLINC150 train are imported as labelled data
//! (`samples import`), weekly training trains router-v1.0.0 from them and
//! it is promoted to production. Then six weeks of the remaining 13 590
//! train utterances (2 265 a week, ~324 a day), each day:
//! - every utterance is answered the way `serve` answers `POST
//!   /nlu/classify` (`capture::handlers::answer`: the production model's
//!   intent or fallback) and logged as a conversation of that day;
//! - the daily-capture stage files the day (auto-filter, review queue,
//!   audit draw);
//! - an oracle spends the day's share of 300 labels a week through
//!   `review::decisions::record`, the call the console and Label Studio
//!   pulls make, answering CLINC's own label.
//!
//! At the end of each week the weekly-training stage trains a candidate
//! and its gate registers it `testing` or `rejected`; a `testing`
//! candidate is promoted to production (`lifecycle::promote`) and serves
//! the next week. Arms:
//! - **product order**: the oracle takes the head of the product's review
//!   order (`review::order`: audits newest first with `audit.share` of the
//!   places of the whole waiting list, then the review queue most urgent
//!   first), as Label Studio's stream and the console's review pane serve it;
//! - **random order**: the same number of labels on items drawn at random
//!   from the same waiting list;
//! - **Label Studio's stream** (`label-studio`, run only when named: it
//!   starts the test harness's real Label Studio 1.23.2, as the tests do):
//!   each day the label-studio-sync stage pushes what waits and places it
//!   in the labelling stream, the oracle takes the day's tasks from
//!   `/api/projects/{id}/next` and annotates them through Label Studio's
//!   API, and a second sync pulls the annotations in; every served task is
//!   checked against the product's head of the day's length at that moment;
//! - **no review**: no human label at all;
//! - **ceiling**: the training call on the seed set plus all traffic seen
//!   so far with its true labels.
//!
//! Measured against truth the product never sees: CLINC150 validation
//! (never used for training or any selection) scores each production model
//! and each gate decision (wrong: a rejected candidate better than
//! production by more than one point of validation accuracy, or a
//! registered one worse by more than one point); CLINC's labels of the
//! traffic give the true production accuracy of each version (its served
//! answers; fallback is right for `oos` only) and the true precision of
//! what daily capture auto-approved, set beside what the product reports
//! from its audits (`models list --json`: production accuracy and
//! auto-approval precision per version, with 95 % interval and n).
//!
//! Run: `cargo bench --bench loop` (seed 1), `cargo bench --bench loop --
//! --seeds 3` (seeds 1–3, then mean ± sd). Environment:
//! `LOOP_BENCH_SEEDS=4,7` exact seeds; `LOOP_BENCH_SUSPECTS=1` flags
//! suspect labels (`suspects.enabled`); `LOOP_BENCH_ARMS=product,ceiling`
//! a subset of `product,label-studio,random,none,ceiling` (all but
//! `label-studio` by default); `LOOP_BENCH_SCORE_ON=train` scores on 10
//! utterances of each intent held out of train instead of validation (to
//! choose a setting, then report it on validation); `FLYWHEEL_BENCH_DATA` the
//! data dir (default `../shared/data`); any other `FLYWHEEL_*` variable
//! sets that product key as it does for the binary (e.g.
//! `FLYWHEEL_AUTO_FILTER__MIN_PRECISION=0.98`), printed at the start.
//! Training uses the product's defaults (epochs, early stopping, selection
//! split); the seed also seeds training (`training.seed`).

#[path = "loop/report.rs"]
mod report;

/// The test harness's real Label Studio, for the `label-studio` arm.
#[allow(dead_code)]
#[path = "../tests/support/label_studio.rs"]
mod label_studio;
#[allow(dead_code)]
#[path = "../tests/support/label_studio_process.rs"]
mod label_studio_process;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{Duration, NaiveDate, Utc};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use flywheel::audit::VersionEstimate;
use flywheel::capture::classifier::{ModelRouter, load_artifact};
use flywheel::capture::handlers::answer;
use flywheel::capture::record::ClassifyRequest;
use flywheel::config::{Config, LoadOptions, LoadedConfig, Origin, Secret};
use flywheel::dataset::{Sample, read_samples};
use flywheel::domain::{ConversationStatus, ModelStatus, ReviewVerdict, Trigger};
use flywheel::error::{Error, Result};
use flywheel::jobs::{self, Launch};
use flywheel::lifecycle::{self, Target};
use flywheel::progress::Reporter;
use flywheel::review::decisions;
use flywheel::review::order::review_order;
use flywheel::router::{self, EvalReport, Model, OOS_LABEL, TrainParams};
use flywheel::stages::daily_capture::{DailyCapture, Window};
use flywheel::stages::label_studio_sync::LabelStudioSync;
use flywheel::stages::samples_import::SamplesImport;
use flywheel::stages::weekly_training::{WeeklyOutcome, WeeklyTraining};
use flywheel::storage::samples::ReviewOutcome;
use flywheel::storage::waiting::WaitingItem as Queued;
use flywheel::storage::{Store, Timestamp};
use flywheel::text::normalize_for_dedup;

use label_studio::LabelStudio;
use report::{Arm, ArmRun, CeilingWeek, GateCall, SeedRun, StreamMatch, Truth, Week};

const WEEKS: usize = 6;
const DAYS: usize = 7;
const SEED_PER_INTENT: usize = 10;
const LABELS_PER_WEEK: usize = 300;
const ANNOTATOR: &str = "loop-bench-oracle";
const ACTOR: &str = "loop-bench";

fn data_dir() -> PathBuf {
    std::env::var_os("FLYWHEEL_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}

/// Seeds from `--seeds N` (1..=N) or `LOOP_BENCH_SEEDS=a,b,…`; seed 1 by default.
fn seeds() -> Vec<u64> {
    if let Ok(list) = std::env::var("LOOP_BENCH_SEEDS") {
        return list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("LOOP_BENCH_SEEDS: comma-separated integers")
            })
            .collect();
    }
    let args: Vec<String> = std::env::args().collect();
    let n = args
        .iter()
        .position(|a| a == "--seeds")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<u64>().expect("--seeds N: a whole number"))
        .unwrap_or(1);
    (1..=n.max(1)).collect()
}

fn arms() -> Vec<Arm> {
    let wanted = std::env::var("LOOP_BENCH_ARMS").unwrap_or_default();
    if wanted.is_empty() {
        return Arm::DEFAULT.to_vec();
    }
    Arm::ALL
        .into_iter()
        .filter(|arm| wanted.split(',').any(|w| w.trim() == arm.key()))
        .collect()
}

/// One seed's draw: the seed set, the traffic by week and day, and the
/// truth the product never sees.
struct Data {
    seed_set: Vec<Sample>,
    /// Week → day → utterances, in arrival order.
    traffic: Vec<Vec<Vec<Sample>>>,
    /// What production and the gate are scored on ([`Scoring`]).
    validation: Vec<Sample>,
    /// CLINC's label of each normalised text (the oracle's answer).
    truth: HashMap<String, String>,
    /// The first simulated day.
    start: NaiveDate,
}

/// What the bench scores production and the gate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scoring {
    /// CLINC150 validation: the figures the README reports.
    Validation,
    /// `LOOP_BENCH_SCORE_ON=train`: 10 utterances of each intent held out
    /// of train (neither seed set nor traffic), so a setting can be chosen
    /// without looking at validation; validation then reports it.
    TrainHoldOut,
}

impl Scoring {
    fn name(self) -> &'static str {
        match self {
            Scoring::Validation => "validation",
            Scoring::TrainHoldOut => "train hold-out",
        }
    }

    fn from_env() -> Scoring {
        match std::env::var("LOOP_BENCH_SCORE_ON").as_deref() {
            Err(_) | Ok("validation") => Scoring::Validation,
            Ok("train") => Scoring::TrainHoldOut,
            Ok(other) => panic!("LOOP_BENCH_SCORE_ON={other}: `validation` or `train`"),
        }
    }
}

impl Data {
    fn draw(train: &[Sample], validation: &[Sample], seed: u64, scoring: Scoring) -> Data {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<&Sample> = train.iter().collect();
        order.shuffle(&mut rng);
        let held_out_per_intent = match scoring {
            Scoring::Validation => 0,
            Scoring::TrainHoldOut => SEED_PER_INTENT,
        };
        let mut per_intent: HashMap<&str, usize> = HashMap::new();
        let (mut seed_set, mut held_out, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        for s in order {
            let n = per_intent.entry(s.intent.as_str()).or_default();
            *n += 1;
            if *n <= SEED_PER_INTENT {
                seed_set.push(s.clone());
            } else if *n <= SEED_PER_INTENT + held_out_per_intent {
                held_out.push(s.clone());
            } else {
                rest.push(s.clone());
            }
        }
        let per_week = rest.len().div_ceil(WEEKS);
        let traffic = rest
            .chunks(per_week)
            .map(|week| {
                (0..DAYS)
                    .map(|d| week[d * week.len() / DAYS..(d + 1) * week.len() / DAYS].to_vec())
                    .collect()
            })
            .collect();
        // A text CLINC lists under two intents keeps its first label.
        let mut truth = HashMap::new();
        for s in train {
            truth
                .entry(normalize_for_dedup(&s.text))
                .or_insert_with(|| s.intent.clone());
        }
        Data {
            seed_set,
            traffic,
            validation: match scoring {
                Scoring::Validation => validation.to_vec(),
                Scoring::TrainHoldOut => held_out,
            },
            truth,
            start: Utc::now().date_naive() - Duration::days((WEEKS * DAYS + 7) as i64),
        }
    }

    fn date(&self, week: usize, day: usize) -> NaiveDate {
        self.start + Duration::days((week * DAYS + day) as i64)
    }
}

/// The model production serves, as `serve` loads it, and as the bench
/// scores it.
struct Serving {
    router: ModelRouter,
    version: String,
    validation: EvalReport,
}

/// The product's defaults with any `FLYWHEEL_*` setting of this process
/// applied, as the binary reads them (`FLYWHEEL_AUTO_FILTER__MIN_PRECISION=0.98`
/// benches another auto-approval target); no config file, no `.env`, and
/// the bench's own data dir and database.
fn product_config(data_dir: &Path) -> Result<LoadedConfig> {
    let options = LoadOptions {
        env: std::env::vars()
            .filter(|(key, _)| {
                key.starts_with("FLYWHEEL_")
                    && !matches!(
                        key.as_str(),
                        "FLYWHEEL_BENCH_DATA" | "FLYWHEEL_DATABASE_URL"
                    )
            })
            .collect(),
        working_dir: data_dir.to_path_buf(),
        data_dir: Some(data_dir.to_path_buf()),
        ignore_default_config_file: true,
        ..LoadOptions::default()
    };
    Config::load(&options)
}

/// Print the product keys the environment sets, as `config show` would
/// (secrets masked by their own serialisation).
fn print_product_settings() -> Result<()> {
    let loaded = product_config(Path::new("."))?;
    let values = serde_json::to_value(&loaded.config)
        .map_err(|e| Error::failure(format!("rendering the configuration: {e}")))?;
    for (key, origin) in &loaded.origins {
        if let Origin::Environment(variable) = origin {
            let value = values
                .pointer(&format!("/{}", key.replace('.', "/")))
                .map_or_else(|| "?".into(), |v| v.to_string());
            println!("loop bench: product setting {key} = {value} (from {variable})");
        }
    }
    Ok(())
}

/// One arm's installation: a data dir, its database, and the oracle.
struct Installation<'a> {
    arm: Arm,
    data: &'a Data,
    config: Config,
    store: Store,
    _dir: tempfile::TempDir,
    rng: ChaCha8Rng,
    serving: Serving,
    served: HashMap<String, Truth>,
    labels: usize,
    /// The `label-studio` arm's server, and this week's match of its
    /// stream against the product's order.
    label_studio: Option<&'static LabelStudio>,
    stream: StreamMatch,
}

impl<'a> Installation<'a> {
    /// Import the seed set, train router-v1.0.0 from it, promote it.
    async fn bootstrap(arm: Arm, data: &'a Data, seed: u64) -> Result<Installation<'a>> {
        let dir = tempfile::tempdir().map_err(|e| Error::failure(format!("temp dir: {e}")))?;
        let mut config = product_config(dir.path())?.config;
        config.training.seed = seed;
        // Ablation: LOOP_BENCH_SUSPECTS=1 flags suspect labels (off by
        // default, as in the product), =0 does not.
        if let Ok(flag) = std::env::var("LOOP_BENCH_SUSPECTS") {
            config.suspects.enabled = flag == "1";
        }
        let label_studio = if arm == Arm::LabelStudio {
            let ls = label_studio::label_studio().ok_or_else(|| {
                Error::failure("the label-studio arm needs Python for a real Label Studio")
            })?;
            config.label_studio.url = Some(ls.url.clone());
            config.label_studio.api_key = Some(Secret::new(ls.pat.clone()));
            Some(ls)
        } else {
            None
        };
        let store = flywheel::storage::open(&config).await?;
        let seed_file = dir.path().join("seed.jsonl");
        let lines: Vec<String> = data
            .seed_set
            .iter()
            .map(|s| serde_json::to_string(s).expect("a sample serialises"))
            .collect();
        std::fs::write(&seed_file, lines.join("\n"))
            .map_err(|e| Error::failure(format!("writing {}: {e}", seed_file.display())))?;
        let launch = Launch::new(&store, &config, Trigger::Cli);
        jobs::run(SamplesImport::new(&seed_file), &launch).await?;
        let WeeklyOutcome::Trained(first) =
            jobs::run(WeeklyTraining::from_config(&config), &launch).await?
        else {
            return Err(Error::failure("the seed set did not train router-v1.0.0"));
        };
        lifecycle::promote(&store, &first.version, Target::Production, ACTOR).await?;
        let serving = load_production(&store, &config, &data.validation).await?;
        Ok(Installation {
            arm,
            data,
            config,
            store,
            _dir: dir,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
            serving,
            served: HashMap::new(),
            labels: 0,
            label_studio,
            stream: StreamMatch::default(),
        })
    }

    fn launch(&self) -> Launch<'_> {
        Launch::new(&self.store, &self.config, Trigger::Cron)
    }

    /// A day of traffic answered and logged as serve does, then filed by
    /// daily capture; the truth about it tallied for its version.
    async fn serve_day(&mut self, week: usize, day: usize) -> Result<()> {
        let items = &self.data.traffic[week][day];
        let date = self.data.date(week, day);
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        let step_ms = 86_400_000 / items.len().max(1) as i64;
        let mut rows = Vec::with_capacity(items.len());
        let mut right = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let request = ClassifyRequest {
                text: item.text.clone(),
                user_hash: None,
                session_id: Some(format!("w{week}d{day}u{i}")),
                language: None,
            };
            let at = Timestamp(midnight + Duration::milliseconds(step_ms * i as i64));
            let (row, answered) = answer(&self.serving.router, request, at)
                .ok_or_else(|| Error::failure("no model is live"))?;
            let served = if answered.fallback {
                OOS_LABEL
            } else {
                answered.intent.as_str()
            };
            right.push(served == item.intent);
            rows.push(row);
        }
        let ids = self.store.insert_conversations(&rows).await?;
        let capture = DailyCapture {
            window: Window::Date(date),
            ..DailyCapture::default()
        };
        jobs::run(capture, &self.launch()).await?;
        // How daily capture filed each conversation (newest first).
        let first = ids.first().copied().unwrap_or(1);
        let filed: HashMap<i64, ConversationStatus> = self
            .store
            .conversations_after(first - 1, ids.len() as i64)
            .await?
            .into_iter()
            .map(|c| (c.id, c.review_status))
            .collect();
        let tally = self.served.entry(self.serving.version.clone()).or_default();
        for (id, right) in ids.iter().zip(right) {
            tally.answered += 1;
            tally.right += usize::from(right);
            if filed.get(id) == Some(&ConversationStatus::AutoApproved) {
                tally.auto_approved += 1;
                tally.auto_right += usize::from(right);
            }
        }
        Ok(())
    }

    /// The oracle spends `budget` labels in this arm's order.
    async fn review(&mut self, budget: usize) -> Result<()> {
        let batch = match self.arm {
            Arm::Product => self.product_order(budget).await?,
            Arm::Random => self.random_order(budget).await?,
            Arm::LabelStudio => return self.review_in_label_studio(budget).await,
            Arm::NoReview | Arm::Ceiling => Vec::new(),
        };
        for sample in batch {
            let label = self.oracle(&sample.normalized_text)?;
            let verdict = if *label == sample.intent {
                ReviewVerdict::Accept
            } else {
                ReviewVerdict::Choose(label.clone())
            };
            let outcome = decisions::record(
                &self.store,
                sample.sample_id,
                verdict,
                Some(ANNOTATOR.into()),
                Timestamp::now(),
            )
            .await?;
            if matches!(outcome, ReviewOutcome::Applied(_)) {
                self.labels += 1;
            }
        }
        Ok(())
    }

    /// CLINC's label of a normalised text.
    fn oracle(&self, normalized_text: &str) -> Result<&'a String> {
        let data: &'a Data = self.data;
        data.truth.get(normalized_text).ok_or_else(|| {
            Error::failure(format!(
                "no CLINC label for the queued text {normalized_text:?}"
            ))
        })
    }

    /// The oracle as an annotator in Label Studio: a push-only sync pushes
    /// what waits and places it in the labelling stream, the oracle takes
    /// `budget` tasks from `/api/projects/{id}/next` and annotates each
    /// through the API, and a second sync pulls the annotations in — the
    /// product's path end to end. Each task served is checked against the
    /// product's head of `budget` items at that moment.
    async fn review_in_label_studio(&mut self, budget: usize) -> Result<()> {
        let ls = self
            .label_studio
            .expect("the label-studio arm has its server");
        // The previous day's second sync pulled everything annotated: this
        // one only pushes.
        let sync = LabelStudioSync::from_config(&self.config)?;
        let pushed = jobs::run(
            LabelStudioSync {
                pull: false,
                ..sync.clone()
            },
            &self.launch(),
        )
        .await?;
        if !pushed.errors.is_empty() {
            return Err(Error::failure(format!("sync: {:?}", pushed.errors)));
        }
        let head: HashSet<i64> = self
            .product_order(budget)
            .await?
            .iter()
            .map(|q| q.sample_id)
            .collect();
        let next = format!("/api/projects/{}/next", pushed.project_id);
        for _ in 0..budget {
            let task = match label_studio::api(&ls.url, reqwest::Method::GET, &next, None).await {
                Ok(task) => task,
                // The stream has nothing left to serve.
                Err(e) if e.to_string().contains("answered 404") => break,
                Err(e) => return Err(Error::failure(format!("Label Studio's stream: {e:#}"))),
            };
            let (Some(task_id), Some(sample_id)) =
                (task["id"].as_i64(), task["data"]["sample_id"].as_i64())
            else {
                return Err(Error::failure(format!(
                    "a task without its sample id: {task}"
                )));
            };
            let sample =
                self.store.sample(sample_id).await?.ok_or_else(|| {
                    Error::failure(format!("task {task_id}: no sample {sample_id}"))
                })?;
            let label = self.oracle(&sample.normalized_text)?.clone();
            ls.annotate(task_id, &label, None).await;
            self.stream.served += 1;
            self.stream.in_product_head += usize::from(head.contains(&sample_id));
        }
        let pulled = jobs::run(
            LabelStudioSync {
                push: false,
                ..sync
            },
            &self.launch(),
        )
        .await?;
        self.labels += pulled.approved + pulled.corrected;
        Ok(())
    }

    /// The first `limit` items of the product's review order.
    async fn product_order(&self, limit: usize) -> Result<Vec<Queued>> {
        let mut waiting = self.waiting_in_order().await?;
        waiting.truncate(limit);
        Ok(waiting)
    }

    /// `limit` items drawn at random from everything waiting for a human.
    async fn random_order(&mut self, limit: usize) -> Result<Vec<Queued>> {
        let mut waiting = self.waiting_in_order().await?;
        waiting.shuffle(&mut self.rng);
        waiting.truncate(limit);
        Ok(waiting)
    }

    /// Everything waiting for a human (the review queue and the audits
    /// awaiting a label), in the product's review order
    /// (`review::order::review_order`, which Label Studio's labelling
    /// stream and the console's review pane show): the queue by expected
    /// value, audits holding `audit.share` of every stretch.
    async fn waiting_in_order(&self) -> Result<Vec<Queued>> {
        Ok(review_order(&self.store, &self.config)
            .await?
            .into_iter()
            .map(|r| r.item)
            .collect())
    }

    /// The week's end: what the product reports against the truth, then
    /// weekly training, the gate against validation, and the promotion.
    async fn end_week(&mut self, week: usize) -> Result<Week> {
        let version = self.serving.version.clone();
        let reported = self
            .store
            .audit_tallies(None)
            .await?
            .iter()
            .map(VersionEstimate::from)
            .find(|e| e.version == version);
        let truth = self.served.get(&version).copied().unwrap_or_default();
        // The review queue wherever it waits: here, or pushed to Label Studio.
        let waiting = self.store.waiting(0).await?;
        let queue = waiting.needs_review() + waiting.in_review();
        let audits_waiting = self.store.audit_queue_size().await?;

        let outcome = jobs::run(WeeklyTraining::from_config(&self.config), &self.launch()).await?;
        let gate = match outcome {
            WeeklyOutcome::Skipped { .. } => None,
            WeeklyOutcome::Trained(summary) => {
                let candidate = load_version(&self.store, &self.config, &summary.version).await?;
                let scored = router::evaluate(&candidate, &self.data.validation);
                let call = GateCall::judge(
                    &summary.version,
                    summary.status,
                    &scored,
                    &self.serving.validation,
                );
                if summary.status == ModelStatus::Testing {
                    lifecycle::promote(&self.store, &summary.version, Target::Production, ACTOR)
                        .await?;
                    self.serving =
                        load_production(&self.store, &self.config, &self.data.validation).await?;
                }
                Some(call)
            }
        };
        Ok(Week {
            week: week + 1,
            labels: self.labels,
            served_by: version,
            truth,
            reported_accuracy: reported.as_ref().and_then(|e| e.production_accuracy),
            reported_precision: reported.as_ref().and_then(|e| e.auto_approval_precision),
            queue,
            audits_waiting,
            gate,
            production: self.serving.version.clone(),
            in_scope: self.serving.validation.in_scope_accuracy.unwrap_or(0.0),
            oos_recall: self.serving.validation.oos_recall.unwrap_or(0.0),
            stream: self.label_studio.map(|_| std::mem::take(&mut self.stream)),
        })
    }
}

/// The production model as serve loads it (artifact paths relative to
/// the data dir), scored on validation.
async fn load_production(store: &Store, config: &Config, validation: &[Sample]) -> Result<Serving> {
    let production = store
        .serving_models()
        .await?
        .into_iter()
        .find(|m| m.status == ModelStatus::Production)
        .ok_or_else(|| Error::failure("no production model"))?;
    let dir = config
        .data_dir
        .join(production.artifact_path.unwrap_or_default());
    let model = Model::load(&dir)?;
    let validation = router::evaluate(&model, validation);
    Ok(Serving {
        router: ModelRouter::new(Some(load_artifact(&dir)?), None),
        version: production.version,
        validation,
    })
}

async fn load_version(store: &Store, config: &Config, version: &str) -> Result<Model> {
    let row = store
        .model_version(version)
        .await?
        .ok_or_else(|| Error::failure(format!("{version} is not registered")))?;
    Model::load(config.data_dir.join(row.artifact_path.unwrap_or_default()))
}

/// One arm of the loop over all weeks.
async fn run_loop(arm: Arm, data: &Data, seed: u64) -> Result<ArmRun> {
    let started = Instant::now();
    let mut installation = Installation::bootstrap(arm, data, seed).await?;
    let mut weeks = Vec::with_capacity(WEEKS);
    let bootstrap = (
        installation.serving.version.clone(),
        installation
            .serving
            .validation
            .in_scope_accuracy
            .unwrap_or(0.0),
        installation.serving.validation.oos_recall.unwrap_or(0.0),
    );
    for week in 0..WEEKS {
        for day in 0..DAYS {
            installation.serve_day(week, day).await?;
            // 300 a week: 43 on the first six days, 42 on the seventh.
            let budget = (day + 1) * LABELS_PER_WEEK / DAYS - day * LABELS_PER_WEEK / DAYS;
            installation.review(budget).await?;
        }
        weeks.push(installation.end_week(week).await?);
    }
    installation.store.close().await;
    Ok(ArmRun {
        arm,
        bootstrap,
        weeks,
        ceiling: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The ceiling: the same training call on everything seen so far, with
/// CLINC's labels.
fn run_ceiling(data: &Data, seed: u64) -> Result<ArmRun> {
    let started = Instant::now();
    let mut seen = data.seed_set.clone();
    let mut weeks = Vec::with_capacity(WEEKS);
    for (week, traffic) in data.traffic.iter().enumerate() {
        seen.extend(traffic.iter().flatten().cloned());
        let params = TrainParams {
            version: format!("ceiling-week-{}", week + 1),
            seed,
            ..TrainParams::default()
        };
        let trained = router::train(&seen, None, &params, &Reporter::silent())?;
        let scored = router::evaluate(&trained.model, &data.validation);
        weeks.push(CeilingWeek {
            in_scope: scored.in_scope_accuracy.unwrap_or(0.0),
            oos_recall: scored.oos_recall.unwrap_or(0.0),
        });
    }
    Ok(ArmRun {
        arm: Arm::Ceiling,
        bootstrap: Default::default(),
        weeks: Vec::new(),
        ceiling: weeks,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary too (unoptimised), where six simulated weeks would take an hour.
    if !std::env::args().any(|a| a == "--bench") {
        println!("loop bench: run it with `cargo bench --bench loop`");
        return;
    }
    let dir = data_dir();
    let (train_file, val_file) = (
        dir.join("clinc150_train.jsonl"),
        dir.join("clinc150_val.jsonl"),
    );
    if !train_file.is_file() || !val_file.is_file() {
        eprintln!(
            "loop bench: {} and {} are needed (FLYWHEEL_BENCH_DATA names another dir); skipped",
            train_file.display(),
            val_file.display()
        );
        return;
    }
    let train = read_samples(&train_file).expect("reading CLINC150 train");
    let validation = read_samples(&val_file).expect("reading CLINC150 validation");
    let seeds = seeds();
    let arms = arms();
    let scoring = Scoring::from_env();
    if scoring == Scoring::TrainHoldOut {
        println!(
            "loop bench: scored on {SEED_PER_INTENT} utterances of each intent held out of train, not validation"
        );
    }
    print_product_settings().expect("reading the product's settings from the environment");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut runs: Vec<SeedRun> = Vec::new();
    for &seed in &seeds {
        let data = Data::draw(&train, &validation, seed, scoring);
        let mut arm_runs: BTreeMap<Arm, ArmRun> = BTreeMap::new();
        for &arm in &arms {
            let run = match arm {
                Arm::Ceiling => run_ceiling(&data, seed),
                _ => runtime.block_on(run_loop(arm, &data, seed)),
            }
            .unwrap_or_else(|err| panic!("seed {seed}, {}: {err}", arm.name()));
            eprintln!("seed {seed}: {} done in {:.0} s", arm.name(), run.seconds);
            arm_runs.insert(arm, run);
        }
        let run = SeedRun {
            seed,
            scored_on: scoring.name(),
            seed_labels: data.seed_set.len(),
            traffic_per_week: data
                .traffic
                .first()
                .map_or(0, |w| w.iter().map(Vec::len).sum()),
            arms: arm_runs,
        };
        report::print_seed(&run);
        runs.push(run);
    }
    report::print_summary(&runs, started.elapsed().as_secs_f64());
}
