//! The inference copy of the n-gram tables: all ensemble members
//! interleaved row by row and quantised to 8 bits with one scale per row.
//!
//! Classifying one utterance is bound by memory reads, not arithmetic: each
//! of its ~150 n-grams reads one random row of a multi-megabyte table.
//! Interleaving the members makes that one contiguous read per n-gram, and
//! int8 makes the read a quarter of the f32 size (128 bytes instead of 512
//! for two members of 64). The rounding error (≤ 0.4 % of a row's largest
//! weight) moved no validation metric measurably.
//!
//! The linear member's weights (one row of intent scores per n-gram) are a
//! table of the same kind, and are stored quantised as they are.

use super::model::Member;

#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// Values per row: members × dim.
    width: usize,
    scales: Vec<f32>,
    values: Vec<i8>,
}

impl Table {
    /// The members' n-gram tables, interleaved row by row.
    pub(crate) fn new(members: &[Member], rows: usize, dim: usize) -> Self {
        Self::from_rows(rows, dim * members.len(), |row, out| {
            for (m, member) in members.iter().enumerate() {
                out[m * dim..(m + 1) * dim]
                    .copy_from_slice(&member.embedding[row * dim..(row + 1) * dim]);
            }
        })
    }

    /// Quantise `rows` rows of `width` values; `fill(row, out)` writes row
    /// `row` in f32.
    pub(crate) fn from_rows(rows: usize, width: usize, fill: impl Fn(usize, &mut [f32])) -> Self {
        let mut scales = Vec::with_capacity(rows);
        let mut values = vec![0i8; rows * width];
        let mut row_f32 = vec![0.0f32; width];
        for (row, out) in values.chunks_mut(width.max(1)).enumerate() {
            fill(row, &mut row_f32);
            let max = row_f32.iter().fold(0.0f32, |a, &x| a.max(x.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            for (q, &x) in out.iter_mut().zip(&row_f32) {
                *q = (x / scale).round().clamp(-127.0, 127.0) as i8;
            }
            scales.push(scale);
        }
        Self {
            width,
            scales,
            values,
        }
    }

    /// A table as stored (the linear member's weights are saved quantised).
    pub(crate) fn from_parts(width: usize, scales: Vec<f32>, values: Vec<i8>) -> Option<Self> {
        (values.len() == scales.len() * width).then_some(Self {
            width,
            scales,
            values,
        })
    }

    pub(crate) fn scales(&self) -> &[f32] {
        &self.scales
    }

    pub(crate) fn values(&self) -> &[i8] {
        &self.values
    }

    /// `out = Σ weight · row` over the sparse vector (`out.len() == width`).
    pub(crate) fn hidden(&self, vector: &[(u32, f32)], out: &mut [f32]) {
        out.iter_mut().for_each(|x| *x = 0.0);
        for &(id, w) in vector {
            let id = id as usize;
            let a = w * self.scales[id];
            let row = &self.values[id * self.width..(id + 1) * self.width];
            for (o, &q) in out.iter_mut().zip(row) {
                *o += a * f32::from(q);
            }
        }
    }

    /// Hidden vectors of a batch (`rows × width`).
    pub(crate) fn hidden_rows(&self, vectors: &[Vec<(u32, f32)>]) -> Vec<f32> {
        let mut hidden = vec![0.0f32; vectors.len() * self.width];
        for (out, v) in hidden.chunks_mut(self.width).zip(vectors) {
            self.hidden(v, out);
        }
        hidden
    }
}
