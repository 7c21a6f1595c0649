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
    let (k, n_f) = (successes as f64, n as f64);
    let p = k / n_f;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n_f)) / (1.0 + z2 / n_f);
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / (1.0 + z2 / n_f);
    Estimate {
        value: p,
        // Exactly 0 or 1 at the ends, which rounding would miss.
        low: if successes == 0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        high: if successes == n {
            1.0
        } else {
            (centre + half).min(1.0)
        },
        n,
    }
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
}
