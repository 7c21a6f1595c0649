//! Shares measured on a sample of items, with their uncertainty: what the
//! gate ([`crate::stages::gate`]) and the audits ([`crate::audit`]) report,
//! so every figure the loop judges itself by carries its n and interval.

use serde::Serialize;

/// The normal quantile of a 95 % interval.
pub const Z95: f64 = 1.959_964;

/// A share with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub n: usize,
}

impl Estimate {
    /// "0.912 (0.884–0.935, n 412)".
    pub fn describe(&self) -> String {
        format!(
            "{:.3} ({:.3}–{:.3}, n {})",
            self.value, self.low, self.high, self.n
        )
    }
}

/// `successes` of `n` with the Wilson 95 % interval (sound at small n and
/// near 0 or 1, where the normal interval is not).
pub fn wilson(successes: usize, n: usize) -> Estimate {
    if n == 0 {
        return Estimate {
            value: 0.0,
            low: 0.0,
            high: 1.0,
            n,
        };
    }
    let p = successes as f64 / n as f64;
    // Exactly 0 or 1 at the ends, which rounding would miss.
    let (low, high) = wilson_interval(p, n as f64, successes == 0, successes == n);
    Estimate {
        value: p,
        low,
        high,
        n,
    }
}

/// The Wilson 95 % interval of share `p` measured on `n` items (`n` may be
/// an effective size, not a whole number).
fn wilson_interval(p: f64, n: f64, none: bool, all: bool) -> (f64, f64) {
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    let low = if none { 0.0 } else { (centre - half).max(0.0) };
    let high = if all { 1.0 } else { (centre + half).min(1.0) };
    (low, high)
}

/// Items of one stratum drawn at one rate (a probability), and how many of
/// them were successes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StratumCount<'a> {
    pub stratum: &'a str,
    pub rate: f64,
    pub n: u64,
    pub successes: u64,
}

/// The share of successes in the population a stratified sample was drawn
/// from: each item weighted by the inverse of its draw rate (the Hájek
/// estimator, unbiased whatever the rates), with a 95 % interval from the
/// stratified variance. `n` is the items measured; the interval is Wilson's
/// at the effective size that variance implies (exactly [`wilson`] when
/// every item was drawn at one rate). Each stratum's share enters the
/// variance as (successes + 1) / (n + 2), so a stratum with no failures
/// yet still counts as uncertain.
pub fn stratified_share(counts: &[StratumCount<'_>]) -> Option<Estimate> {
    let n: u64 = counts.iter().map(|c| c.n).sum();
    if n == 0 {
        return None;
    }
    let mut strata: Vec<&str> = counts.iter().map(|c| c.stratum).collect();
    strata.sort_unstable();
    strata.dedup();
    // Per stratum: estimated size, weighted successes, items measured.
    let sizes: Vec<(f64, f64, f64)> = strata
        .iter()
        .map(|&h| {
            counts
                .iter()
                .filter(|c| c.stratum == h && c.rate > 0.0)
                .fold((0.0, 0.0, 0.0), |(size, right, items), c| {
                    (
                        size + c.n as f64 / c.rate,
                        right + c.successes as f64 / c.rate,
                        items + c.n as f64,
                    )
                })
        })
        .filter(|&(_, _, items)| items > 0.0)
        .collect();
    let total: f64 = sizes.iter().map(|s| s.0).sum();
    let value = sizes.iter().map(|s| s.1).sum::<f64>() / total;
    let (mut smoothed, mut variance) = (0.0, 0.0);
    for &(size, right, items) in &sizes {
        let share = size / total;
        let p = (right / size * items + 1.0) / (items + 2.0);
        smoothed += share * p;
        variance += share * share * p * (1.0 - p) / items;
    }
    let effective = smoothed * (1.0 - smoothed) / variance;
    let successes: u64 = counts.iter().map(|c| c.successes).sum();
    let (low, high) = wilson_interval(value, effective, successes == 0, successes == n);
    Some(Estimate {
        value,
        low,
        high,
        n: n as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_known_values_and_stays_in_bounds() {
        // Wilson 95 % for 8/10: 0.490 to 0.943.
        let e = wilson(8, 10);
        assert!(
            (e.low - 0.4902).abs() < 1e-3 && (e.high - 0.9433).abs() < 1e-3,
            "{e:?}"
        );
        let all = wilson(50, 50);
        assert_eq!(all.high, 1.0);
        assert!(all.low > 0.9 && all.low < 1.0, "{all:?}");
        let none = wilson(0, 0);
        assert_eq!((none.low, none.high, none.n), (0.0, 1.0, 0));
        assert_eq!(e.describe(), "0.800 (0.490–0.943, n 10)");
    }

    fn count(stratum: &str, rate: f64, n: u64, successes: u64) -> StratumCount<'_> {
        StratumCount {
            stratum,
            rate,
            n,
            successes,
        }
    }

    #[test]
    fn one_rate_is_wilson_and_rates_weight_their_items() {
        // Drawn at one rate: exactly Wilson, whatever the rate.
        let plain = stratified_share(&[count("a", 0.05, 10, 8)]).unwrap();
        let e = wilson(8, 10);
        assert!((plain.value - e.value).abs() < 1e-12);
        assert!((plain.low - e.low).abs() < 1e-3 && (plain.high - e.high).abs() < 1e-3);
        assert_eq!(plain.n, 10);
        assert_eq!(stratified_share(&[count("a", 0.05, 0, 0)]), None);

        // 40 confident items drawn at 4 %, 39 right, stand for 1 000; 40
        // uncertain ones drawn at 8 %, 20 right, for 500: (975 + 250) /
        // 1 500, where the unweighted share would say 59/80.
        let strata = [count("auto", 0.04, 40, 39), count("review", 0.08, 40, 20)];
        let weighted = stratified_share(&strata).unwrap();
        assert!(
            (weighted.value - 1225.0 / 1500.0).abs() < 1e-12,
            "{weighted:?}"
        );
        assert_eq!(weighted.n, 80);
        assert!(weighted.low < weighted.value && weighted.value < weighted.high);
        // Stratifying narrows the interval against one unweighted sample of
        // the same size and share.
        let uniform = wilson(65, 80);
        assert!(
            weighted.high - weighted.low < uniform.high - uniform.low,
            "{weighted:?} vs {uniform:?}"
        );
        // Days drawn at different rates within one stratum weigh by their own rate.
        let days = [count("auto", 0.04, 20, 20), count("auto", 0.02, 10, 5)];
        let mixed = stratified_share(&days).unwrap();
        assert!(
            (mixed.value - (500.0 + 250.0) / 1000.0).abs() < 1e-12,
            "{mixed:?}"
        );
        // All right: the top is exactly 1 and the bottom below it.
        let perfect =
            stratified_share(&[count("auto", 0.04, 30, 30), count("review", 0.08, 5, 5)]).unwrap();
        assert_eq!((perfect.value, perfect.high), (1.0, 1.0));
        assert!(perfect.low < 1.0 && perfect.low > 0.8, "{perfect:?}");
    }

    #[test]
    fn stratified_intervals_cover_the_truth_about_95_percent_of_the_time() {
        // Two strata, 3 000 confident items 97 % right and 1 000 uncertain
        // ones 65 % right, drawn at 2.5 % and 5 % many times over.
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        let truth = (3000.0 * 0.97 + 1000.0 * 0.65) / 4000.0;
        let (runs, mut covered, mut sum) = (2000, 0, 0.0);
        for _ in 0..runs {
            let mut draw = |size: usize, right: f64, rate: f64| {
                let (mut n, mut k) = (0, 0);
                for _ in 0..size {
                    if rng.random::<f64>() < rate {
                        n += 1;
                        k += u64::from(rng.random::<f64>() < right);
                    }
                }
                (n, k)
            };
            let (na, ka) = draw(3000, 0.97, 0.025);
            let (nr, kr) = draw(1000, 0.65, 0.05);
            let e =
                stratified_share(&[count("auto", 0.025, na, ka), count("review", 0.05, nr, kr)])
                    .unwrap();
            sum += e.value;
            covered += usize::from(e.low <= truth && truth <= e.high);
        }
        let mean = sum / runs as f64;
        assert!((mean - truth).abs() < 0.003, "mean {mean} vs {truth}");
        let coverage = covered as f64 / runs as f64;
        assert!((0.93..=0.98).contains(&coverage), "coverage {coverage}");
    }
}
