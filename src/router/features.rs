//! Text → sparse feature vector: hashed word unigrams and bigrams plus
//! character 3- to 5-grams of each word with boundary marks (like scikit-learn's
//! `char_wb`), weighted by sublinear TF × IDF and L2-normalised.
//!
//! Character n-grams carry the model across spelling variants, which matter
//! more for romanised Hinglish ("karo", "kardo", "kar do") than for English.
//! Features are hashed to 64 bits and then looked up in a vocabulary built
//! from the training data, so there are no collisions between kept features
//! and the table holds only rows that training actually touched.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

/// Which features a model uses; saved with the artifact (`features.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// Longest word n-gram (1 = unigrams only, 2 = also bigrams).
    pub word_ngrams: usize,
    /// Character n-gram lengths, inclusive, counted with the boundary marks.
    pub char_min: usize,
    pub char_max: usize,
    /// A feature must occur in at least this many training utterances.
    pub min_count: u32,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            word_ngrams: 2,
            // 2-grams cost a quarter of the lookups and bought nothing on
            // either validation set.
            char_min: 3,
            char_max: 5,
            min_count: 2,
        }
    }
}

/// Keys are already well-mixed 64-bit hashes: hashing them again is waste on
/// the classify path.
#[derive(Default, Clone, Copy)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fnv(self.0, bytes);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub type FeatureMap = HashMap<u64, u32, BuildHasherDefault<PreHashed>>;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// splitmix64's finaliser: FNV's high bits are weak and the hash map uses them.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lower-case and keep only word characters (letters, digits, Devanagari
/// vowel signs and virama); everything else separates words. Apostrophes
/// vanish so "what's" and "whats" meet.
pub fn normalise(text: &str, out: &mut String) {
    out.clear();
    for c in text.chars() {
        if c == '\'' || c == '’' {
            continue;
        }
        let devanagari_mark =
            ('\u{0900}'..='\u{0963}').contains(&c) || ('\u{0966}'..='\u{097F}').contains(&c);
        if c.is_alphanumeric() || devanagari_mark {
            out.extend(c.to_lowercase());
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
}

/// Reusable buffers so extraction does not allocate per utterance.
#[derive(Default)]
pub struct Scratch {
    norm: String,
    word: String,
    bounds: Vec<usize>,
    ids: Vec<u32>,
    pub hashes: Vec<u64>,
}

/// Push the hash of every feature occurrence of `text` into `s.hashes`
/// (duplicates included: they are the term frequencies).
pub fn extract(cfg: &FeatureConfig, text: &str, s: &mut Scratch) {
    s.hashes.clear();
    normalise(text, &mut s.norm);
    let mut prev: Option<u64> = None;
    for word in s.norm.split_ascii_whitespace() {
        let w = mix(fnv(fnv(FNV_OFFSET, b"w"), word.as_bytes()));
        s.hashes.push(w);
        if cfg.word_ngrams >= 2 {
            if let Some(p) = prev {
                s.hashes.push(mix(p.rotate_left(17) ^ w ^ 0x5bd1_e995));
            }
            prev = Some(w);
        }
        s.word.clear();
        s.word.push('<');
        s.word.push_str(word);
        s.word.push('>');
        s.bounds.clear();
        s.bounds.extend(s.word.char_indices().map(|(i, _)| i));
        s.bounds.push(s.word.len());
        let chars = s.bounds.len() - 1;
        for n in cfg.char_min..=cfg.char_max.min(chars) {
            let seed = fnv(FNV_OFFSET, &[b'c', n as u8]);
            for i in 0..=chars - n {
                let gram = &s.word.as_bytes()[s.bounds[i]..s.bounds[i + n]];
                s.hashes.push(mix(fnv(seed, gram)));
            }
        }
    }
}

/// The kept features with their IDF weights.
#[derive(Debug, Clone)]
pub struct Vocab {
    pub hashes: Vec<u64>,
    pub idf: Vec<f32>,
    pub index: FeatureMap,
}

impl Vocab {
    pub fn from_parts(hashes: Vec<u64>, idf: Vec<f32>) -> Self {
        let index = hashes
            .iter()
            .enumerate()
            .map(|(i, &h)| (h, i as u32))
            .collect();
        Self { hashes, idf, index }
    }

    /// Count document frequencies over the training texts and keep the
    /// features seen in at least `min_count` of them, in hash order so the
    /// table layout does not depend on hash-map iteration order.
    pub fn build<'a>(cfg: &FeatureConfig, texts: impl Iterator<Item = &'a str>) -> Self {
        let mut df: FeatureMap = FeatureMap::default();
        let mut s = Scratch::default();
        let mut docs = 0u32;
        for text in texts {
            docs += 1;
            extract(cfg, text, &mut s);
            s.hashes.sort_unstable();
            s.hashes.dedup();
            for &h in &s.hashes {
                *df.entry(h).or_insert(0) += 1;
            }
        }
        let mut kept: Vec<(u64, u32)> = df
            .into_iter()
            .filter(|&(_, c)| c >= cfg.min_count.max(1))
            .collect();
        kept.sort_unstable();
        let n = docs as f32;
        let idf = kept
            .iter()
            .map(|&(_, c)| ((1.0 + n) / (1.0 + c as f32)).ln() + 1.0)
            .collect();
        Self::from_parts(kept.into_iter().map(|(h, _)| h).collect(), idf)
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The sparse vector of `text` as (feature index, weight), sorted by index.
    pub fn vectorise(
        &self,
        cfg: &FeatureConfig,
        text: &str,
        s: &mut Scratch,
        out: &mut Vec<(u32, f32)>,
    ) {
        extract(cfg, text, s);
        let ids = &mut s.ids;
        ids.clear();
        ids.extend(s.hashes.iter().filter_map(|h| self.index.get(h).copied()));
        ids.sort_unstable();
        out.clear();
        let mut norm = 0.0f32;
        let mut i = 0;
        while i < ids.len() {
            let id = ids[i];
            let mut j = i;
            while j < ids.len() && ids[j] == id {
                j += 1;
            }
            let tf = (j - i) as f32;
            let w = (1.0 + tf.ln()) * self.idf[id as usize];
            norm += w * w;
            out.push((id, w));
            i = j;
        }
        if norm > 0.0 {
            let inv = norm.sqrt().recip();
            out.iter_mut().for_each(|(_, w)| *w *= inv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_folds_case_punctuation_and_keeps_devanagari_marks() {
        let mut out = String::new();
        normalise("What's UP?!  खाना भेजो।", &mut out);
        assert_eq!(out.trim(), "whats up खाना भेजो");
    }

    #[test]
    fn vectors_are_unit_length_and_unknown_text_is_empty() {
        let cfg = FeatureConfig {
            min_count: 1,
            ..Default::default()
        };
        let vocab = Vocab::build(&cfg, ["order pizza now", "order food"].into_iter());
        let mut s = Scratch::default();
        let mut v = Vec::new();
        vocab.vectorise(&cfg, "Order pizza", &mut s, &mut v);
        let norm: f32 = v.iter().map(|(_, w)| w * w).sum();
        assert!((norm - 1.0).abs() < 1e-5);
        assert!(v.windows(2).all(|p| p[0].0 < p[1].0));
        vocab.vectorise(&cfg, "qqq xkx", &mut s, &mut v);
        assert!(v.is_empty(), "no known feature in {v:?}");
    }
}
