//! The stable test split (DESIGN §1): a sample belongs to it by a hash of
//! its id, so every model version is scored on the same held-out samples and
//! a sample never moves between train and test as the data grows.

/// SplitMix64: a fixed, well-mixed hash; stable across platforms and
/// releases (unlike `std`'s hasher, which may change).
fn mix(id: i64) -> u64 {
    let mut z = (id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether sample `id` is in the held-out test split of `percent` %.
pub fn is_test(id: i64, percent: u32) -> bool {
    mix(id) % 100 < u64::from(percent.min(100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stable_and_close_to_the_asked_share() {
        let test: usize = (1..=100_000).filter(|&id| is_test(id, 15)).count();
        assert!((14_500..15_500).contains(&test), "{test}");
        // Fixed values: changing the hash would silently reshuffle every
        // installation's test split.
        let first: Vec<i64> = (1..=200).filter(|&id| is_test(id, 15)).take(5).collect();
        assert_eq!(first, super::tests::FIRST_TEST_IDS);
        assert!(!is_test(1, 0));
        assert!(is_test(1, 100));
    }

    const FIRST_TEST_IDS: [i64; 5] = [2, 11, 24, 26, 29];
}
