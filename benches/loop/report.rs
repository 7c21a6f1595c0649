//! What the loop bench measured, and its tables (Markdown, so the README
//! takes them as printed).

use std::collections::BTreeMap;

use flywheel::domain::ModelStatus;
use flywheel::estimate::Estimate;
use flywheel::router::EvalReport;

/// Gate mistakes are differences beyond this on validation accuracy.
const GATE_MARGIN: f64 = 0.01;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Arm {
    Product,
    LabelStudio,
    Random,
    NoReview,
    Ceiling,
}

impl Arm {
    pub const ALL: [Arm; 5] = [
        Arm::Product,
        Arm::LabelStudio,
        Arm::Random,
        Arm::NoReview,
        Arm::Ceiling,
    ];
    /// What runs when `LOOP_BENCH_ARMS` names nothing: all but Label
    /// Studio's stream, which needs a real Label Studio and takes longer.
    pub const DEFAULT: [Arm; 4] = [Arm::Product, Arm::Random, Arm::NoReview, Arm::Ceiling];
    const LOOPS: [Arm; 4] = [Arm::Product, Arm::LabelStudio, Arm::Random, Arm::NoReview];

    /// Its name in `LOOP_BENCH_ARMS`.
    pub fn key(self) -> &'static str {
        match self {
            Arm::Product => "product",
            Arm::LabelStudio => "label-studio",
            Arm::Random => "random",
            Arm::NoReview => "none",
            Arm::Ceiling => "ceiling",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arm::Product => "product order",
            Arm::LabelStudio => "Label Studio's stream",
            Arm::Random => "random order",
            Arm::NoReview => "no review",
            Arm::Ceiling => "ceiling (all traffic, true labels)",
        }
    }
}

/// A weekly-training decision set beside validation.
#[derive(Debug, Clone)]
pub struct GateCall {
    pub candidate: String,
    pub status: ModelStatus,
    /// Validation accuracy (fallback right for `oos` only) of the
    /// candidate and of production.
    pub candidate_accuracy: f64,
    pub production_accuracy: f64,
    pub wrong: bool,
}

impl GateCall {
    pub fn judge(
        candidate: &str,
        status: ModelStatus,
        scored: &EvalReport,
        production: &EvalReport,
    ) -> GateCall {
        let (c, p) = (f64::from(scored.accuracy), f64::from(production.accuracy));
        let wrong = match status {
            ModelStatus::Rejected => c - p > GATE_MARGIN,
            _ => c - p < -GATE_MARGIN,
        };
        GateCall {
            candidate: candidate.to_string(),
            status,
            candidate_accuracy: c,
            production_accuracy: p,
            wrong,
        }
    }
}

/// The truth about the traffic a version served: its answers, how many
/// were right (fallback only for `oos`), and the same for those daily
/// capture auto-approved.
#[derive(Debug, Default, Clone, Copy)]
pub struct Truth {
    pub answered: usize,
    pub right: usize,
    pub auto_approved: usize,
    pub auto_right: usize,
}

impl Truth {
    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.right, self.answered)
    }

    pub fn precision(&self) -> Option<f64> {
        ratio(self.auto_right, self.auto_approved)
    }

    /// Share of the traffic daily capture auto-approved.
    pub fn coverage(&self) -> Option<f64> {
        ratio(self.auto_approved, self.answered)
    }
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// One week of one loop arm.
#[derive(Debug, Clone)]
pub struct Week {
    pub week: usize,
    /// Human labels spent so far.
    pub labels: usize,
    /// The version production served this week.
    pub served_by: String,
    /// Over all the traffic that version served (this week and any before):
    /// the truth, and what the audits report (`models list --json`).
    pub truth: Truth,
    pub reported_accuracy: Option<Estimate>,
    pub reported_precision: Option<Estimate>,
    /// Waiting at the week's end, before training: the review queue, and
    /// audits without a human label.
    pub queue: i64,
    pub audits_waiting: i64,
    /// `None`: weekly training skipped (too few new samples).
    pub gate: Option<GateCall>,
    /// Production after the week, on validation.
    pub production: String,
    pub in_scope: f32,
    pub oos_recall: f32,
    /// Label Studio's arm: of the tasks its labelling stream served this
    /// week, how many were in the product's head of the same length at
    /// the moment they were asked for (`stats queue`'s order), and how many
    /// it served.
    pub stream: Option<StreamMatch>,
}

/// Label Studio's labelling stream against the product's order.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamMatch {
    pub in_product_head: usize,
    pub served: usize,
}

impl StreamMatch {
    pub fn share(self) -> Option<f64> {
        (self.served > 0).then(|| self.in_product_head as f64 / self.served as f64)
    }
}

#[derive(Debug, Clone)]
pub struct CeilingWeek {
    pub in_scope: f32,
    pub oos_recall: f32,
}

#[derive(Debug, Clone)]
pub struct ArmRun {
    pub arm: Arm,
    /// router-v1.0.0 on validation: version, in-scope accuracy, OOS recall.
    pub bootstrap: (String, f32, f32),
    pub weeks: Vec<Week>,
    pub ceiling: Vec<CeilingWeek>,
    pub seconds: f64,
}

impl ArmRun {
    /// In-scope accuracy and OOS recall of production after `week` (0: bootstrap).
    fn production_at(&self, week: usize) -> Option<(f32, f32)> {
        if self.arm == Arm::Ceiling {
            return week
                .checked_sub(1)
                .and_then(|w| self.ceiling.get(w))
                .map(|c| (c.in_scope, c.oos_recall));
        }
        match week {
            0 => Some((self.bootstrap.1, self.bootstrap.2)),
            w => self.weeks.get(w - 1).map(|w| (w.in_scope, w.oos_recall)),
        }
    }

    /// The last week each version served: its figures cover all its traffic.
    fn per_version(&self) -> Vec<&Week> {
        let mut last: BTreeMap<&str, &Week> = BTreeMap::new();
        for w in &self.weeks {
            last.insert(w.served_by.as_str(), w);
        }
        last.into_values().collect()
    }

    fn last(&self) -> Option<(f32, f32)> {
        self.production_at(self.weeks.len().max(self.ceiling.len()))
    }
}

pub struct SeedRun {
    pub seed: u64,
    /// What production and the gate were scored on: `validation`, or the
    /// `train hold-out` a setting is chosen on.
    pub scored_on: &'static str,
    pub seed_labels: usize,
    pub traffic_per_week: usize,
    pub arms: BTreeMap<Arm, ArmRun>,
}

fn estimate(e: Option<Estimate>) -> String {
    e.map_or("–".into(), |e| {
        format!("{:.3} ({:.3}–{:.3}, n {})", e.value, e.low, e.high, e.n)
    })
}

fn share(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.3}"))
}

fn points(d: f64) -> String {
    format!("{:+.1}", 100.0 * d)
}

/// "0.9123 ± 0.0021" (just the mean for one value).
fn mean_sd(values: &[f64], decimals: usize) -> String {
    if values.is_empty() {
        return "–".into();
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() == 1 {
        return format!("{mean:.decimals$}");
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    format!("{mean:.decimals$} ± {:.decimals$}", var.sqrt())
}

pub fn print_seed(run: &SeedRun) {
    println!(
        "\n## Seed {}: {} seed labels, {} conversations and {} labels a week\n",
        run.seed,
        run.seed_labels,
        run.traffic_per_week,
        super::LABELS_PER_WEEK
    );
    for arm in Arm::LOOPS {
        let Some(a) = run.arms.get(&arm) else {
            continue;
        };
        println!("### {} ({:.0} s)\n", arm.name(), a.seconds);
        println!(
            "| week | labels | served by | production accuracy: true / reported | \
             auto-approval precision: true / reported | waiting: queue / audits | \
             gate: candidate vs production, {} accuracy | decision | call | \
             production after: in-scope / OOS recall |",
            run.scored_on
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| 0 | 0 | | | | | | | | {} {:.4} / {:.3} |",
            a.bootstrap.0, a.bootstrap.1, a.bootstrap.2
        );
        for w in &a.weeks {
            let (gate, decision, call) = match &w.gate {
                None => ("skipped".to_string(), String::new(), String::new()),
                Some(g) => (
                    format!(
                        "{} {:.4} vs {:.4} ({})",
                        g.candidate,
                        g.candidate_accuracy,
                        g.production_accuracy,
                        points(g.candidate_accuracy - g.production_accuracy)
                    ),
                    g.status.to_string(),
                    if g.wrong { "**wrong**" } else { "right" }.to_string(),
                ),
            };
            println!(
                "| {} | {} | {} | {} / {} | {} / {} | {} / {} | {gate} | {decision} | {call} | {} {:.4} / {:.3} |",
                w.week,
                w.labels,
                w.served_by,
                share(w.truth.accuracy()),
                estimate(w.reported_accuracy),
                share(w.truth.precision()),
                estimate(w.reported_precision),
                w.queue,
                w.audits_waiting,
                w.production,
                w.in_scope,
                w.oos_recall
            );
        }
        println!();
        if a.weeks.iter().any(|w| w.stream.is_some()) {
            println!(
                "Label Studio's labelling stream: served tasks that were in the product's \
                 head of the same length when asked for, by week: {}\n",
                a.weeks
                    .iter()
                    .map(|w| {
                        let m = w.stream.unwrap_or_default();
                        format!("{}/{} ({})", m.in_product_head, m.served, share(m.share()))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    println!(
        "### Production on {}: in-scope accuracy / OOS recall\n",
        run.scored_on
    );
    let present: Vec<&ArmRun> = Arm::ALL.iter().filter_map(|a| run.arms.get(a)).collect();
    println!(
        "| week | {} |",
        present
            .iter()
            .map(|a| a.arm.name())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(present.len()));
    for week in 0..=super::WEEKS {
        let cells: Vec<String> = present
            .iter()
            .map(|a| {
                a.production_at(week)
                    .map_or("–".into(), |(i, o)| format!("{i:.4} / {o:.3}"))
            })
            .collect();
        println!("| {week} | {} |", cells.join(" | "));
    }
}

/// How far a reported production accuracy was from the truth, and
/// whether its 95 % interval held the truth.
struct Miss {
    off: f64,
    inside: bool,
}

/// Mean ± sd over seeds of the final figures, and the bars of DESIGN §9.
pub fn print_summary(runs: &[SeedRun], seconds: f64) {
    let seeds: Vec<String> = runs.iter().map(|r| r.seed.to_string()).collect();
    println!(
        "\n## After six weeks, seeds {} (mean ± sd over seeds)\n",
        seeds.join(", ")
    );
    let arms: Vec<Arm> = Arm::ALL
        .into_iter()
        .filter(|a| runs.iter().all(|r| r.arms.contains_key(a)))
        .collect();
    let per_arm = |decimals: usize, f: &dyn Fn(&ArmRun) -> Option<f64>| -> Vec<String> {
        arms.iter()
            .map(|arm| {
                let values: Vec<f64> = runs.iter().filter_map(|r| f(&r.arms[arm])).collect();
                mean_sd(&values, decimals)
            })
            .collect()
    };
    println!(
        "| | {} |",
        arms.iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(arms.len()));
    let row = |name: &str, cells: Vec<String>| println!("| {name} | {} |", cells.join(" | "));
    row(
        "labels spent",
        per_arm(0, &|a: &ArmRun| a.weeks.last().map(|w| w.labels as f64)),
    );
    let scored_on = runs.first().map_or("validation", |r| r.scored_on);
    row(
        &format!("production in-scope accuracy ({scored_on})"),
        per_arm(4, &|a: &ArmRun| a.last().map(|(i, _)| f64::from(i))),
    );
    row(
        &format!("production OOS recall ({scored_on})"),
        per_arm(4, &|a: &ArmRun| a.last().map(|(_, o)| f64::from(o))),
    );
    let ceiling = |r: &SeedRun| r.arms.get(&Arm::Ceiling).and_then(ArmRun::last);
    let gaps: Vec<String> = arms
        .iter()
        .map(|arm| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| {
                    let (i, _) = r.arms[arm].last()?;
                    let (c, _) = ceiling(r)?;
                    Some(100.0 * f64::from(i - c))
                })
                .collect();
            mean_sd(&values, 2)
        })
        .collect();
    row("in-scope accuracy − ceiling (points)", gaps);
    let gate = |a: &ArmRun| {
        let calls: Vec<&GateCall> = a.weeks.iter().filter_map(|w| w.gate.as_ref()).collect();
        (calls.iter().filter(|c| c.wrong).count(), calls.len())
    };
    row(
        "gate calls wrong (all seeds)",
        arms.iter()
            .map(|arm| {
                if *arm == Arm::Ceiling {
                    return "–".into();
                }
                let (wrong, all) = runs
                    .iter()
                    .map(|r| gate(&r.arms[arm]))
                    .fold((0, 0), |(w, n), (w2, n2)| (w + w2, n + n2));
                format!("{wrong}/{all}")
            })
            .collect(),
    );
    // Reported minus true production accuracy, every week of every seed.
    let errors = |a: &ArmRun| -> Vec<Miss> {
        a.weeks
            .iter()
            .filter_map(|w| {
                let (t, r) = (w.truth.accuracy()?, w.reported_accuracy?);
                Some(Miss {
                    off: r.value - t,
                    inside: (r.low..=r.high).contains(&t),
                })
            })
            .collect()
    };
    let pooled = |f: &dyn Fn(&[Miss]) -> String| -> Vec<String> {
        arms.iter()
            .map(|arm| {
                let all: Vec<Miss> = runs.iter().flat_map(|r| errors(&r.arms[arm])).collect();
                if all.is_empty() {
                    "–".into()
                } else {
                    f(&all)
                }
            })
            .collect()
    };
    row(
        "reported − true production accuracy, mean (points, all weeks)",
        pooled(&|e: &[Miss]| mean_sd(&e.iter().map(|m| 100.0 * m.off).collect::<Vec<_>>(), 2)),
    );
    row(
        "largest |reported − true| (points)",
        pooled(&|e: &[Miss]| {
            format!(
                "{:.1}",
                e.iter().map(|m| 100.0 * m.off.abs()).fold(0.0, f64::max)
            )
        }),
    );
    row(
        "truth inside the reported 95 % interval",
        pooled(&|e: &[Miss]| format!("{}/{}", e.iter().filter(|m| m.inside).count(), e.len())),
    );
    row(
        "auto-approval precision over all versions: true",
        per_arm(4, &|a: &ArmRun| {
            let (right, n) = a.per_version().iter().fold((0, 0), |(r, n), w| {
                (r + w.truth.auto_right, n + w.truth.auto_approved)
            });
            ratio(right, n)
        }),
    );
    row(
        "auto-approval coverage (share of traffic) over all versions",
        per_arm(3, &|a: &ArmRun| {
            let (approved, n) = a.per_version().iter().fold((0, 0), |(r, n), w| {
                (r + w.truth.auto_approved, n + w.truth.answered)
            });
            ratio(approved, n)
        }),
    );
    row(
        "auto-approval precision over all versions: reported",
        per_arm(4, &|a: &ArmRun| {
            let estimates: Vec<Estimate> = a
                .per_version()
                .iter()
                .filter_map(|w| w.reported_precision)
                .collect();
            let right: f64 = estimates
                .iter()
                .map(|e| (e.value * e.n as f64).round())
                .sum();
            let n: usize = estimates.iter().map(|e| e.n).sum();
            (n > 0).then(|| right / n as f64)
        }),
    );
    row(
        "wall seconds per seed",
        arms.iter()
            .map(|arm| {
                mean_sd(
                    &runs.iter().map(|r| r.arms[arm].seconds).collect::<Vec<_>>(),
                    0,
                )
            })
            .collect(),
    );
    print_bars(runs);
    println!("\nwhole bench: {seconds:.0} s wall");
}

/// DESIGN §9's loop bars, each with the figure it was judged on.
fn print_bars(runs: &[SeedRun]) {
    let final_in_scope = |arm: Arm| -> Option<Vec<f64>> {
        runs.iter()
            .map(|r| r.arms.get(&arm)?.last().map(|(i, _)| f64::from(i)))
            .collect()
    };
    println!("\nBars (DESIGN §9), product order:\n");
    let mark = |ok: bool| if ok { "✓" } else { "✗" };
    let Some(product) = runs
        .iter()
        .map(|r| r.arms.get(&Arm::Product))
        .collect::<Option<Vec<_>>>()
    else {
        println!("- (the product arm did not run)");
        return;
    };
    let calls: Vec<&GateCall> = product
        .iter()
        .flat_map(|a| a.weeks.iter().filter_map(|w| w.gate.as_ref()))
        .collect();
    let wrong = calls.iter().filter(|c| c.wrong).count();
    println!(
        "- {} the gate makes no wrong call: {wrong} of {} wrong",
        mark(wrong == 0),
        calls.len()
    );
    let worst = product
        .iter()
        .flat_map(|a| &a.weeks)
        .filter_map(|w| Some((w.reported_accuracy?.value - w.truth.accuracy()?).abs()))
        .fold(0.0, f64::max);
    println!(
        "- {} reported production accuracy within 3 points of the truth: at most {:.1} points off",
        mark(worst <= 0.03),
        100.0 * worst
    );
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    if let (Some(p), Some(c)) = (final_in_scope(Arm::Product), final_in_scope(Arm::Ceiling)) {
        let gap = 100.0 * (mean(&p) - mean(&c));
        println!(
            "- {} after 1 800 labels, production within 1.5 points of the ceiling: {gap:+.2} points",
            mark(gap >= -1.5)
        );
    }
    if let (Some(p), Some(r)) = (final_in_scope(Arm::Product), final_in_scope(Arm::Random)) {
        let lead = 100.0 * (mean(&p) - mean(&r));
        println!(
            "- {} product order leads random order by ≥ 1.5 points: {lead:+.2} points",
            mark(lead >= 1.5)
        );
    }
    let stream_weeks: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.arms.get(&Arm::LabelStudio))
        .flat_map(|a| a.weeks.iter().filter_map(|w| w.stream?.share()))
        .collect();
    if !stream_weeks.is_empty() {
        let lowest = stream_weeks.iter().copied().fold(1.0, f64::min);
        println!(
            "- {} Label Studio's stream serves ≥ 90 % of the product's head every week: lowest week {}",
            mark(lowest >= 0.9),
            share(Some(lowest))
        );
    }
    let precision: Vec<f64> = product
        .iter()
        .flat_map(|a| &a.weeks)
        .filter_map(|w| w.truth.precision())
        .collect();
    let lowest = precision.iter().copied().fold(1.0, f64::min);
    let coverage: Vec<f64> = product
        .iter()
        .flat_map(|a| &a.weeks)
        .filter_map(|w| w.truth.coverage())
        .collect();
    let least = coverage.iter().copied().fold(1.0, f64::min);
    println!(
        "- {} auto-approval precision ≥ 0.97 with coverage ≥ 55 %: precision lowest week {lowest:.3}, mean {:.3}; coverage lowest week {:.1} %, mean {:.1} %",
        mark(lowest >= 0.97 && least >= 0.55),
        mean(&precision),
        100.0 * least,
        100.0 * mean(&coverage)
    );
}
