//! A Zipf sampler over ranks `0..n`: rank r is drawn with probability
//! proportional to `1 / (r + 1)^exponent`. Built once (a cumulative table), then
//! each draw is one binary search.

/// Most ranks a sampler holds (its table is 8 bytes per rank).
pub const RANKS_MAX: usize = 10_000_000;

#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub fn new(ranks: usize, exponent: f64) -> Self {
        assert!(
            (1..=RANKS_MAX).contains(&ranks),
            "a Zipf sampler holds 1..={RANKS_MAX} ranks"
        );
        let mut cumulative = Vec::with_capacity(ranks);
        let mut sum = 0.0;
        for rank in 0..ranks {
            sum += 1.0 / ((rank + 1) as f64).powf(exponent);
            cumulative.push(sum);
        }
        for value in &mut cumulative {
            *value /= sum;
        }
        Self { cumulative }
    }

    /// The rank drawn by `uniform`, a number drawn uniformly from `[0, 1)`.
    pub fn sample(&self, uniform: f64) -> usize {
        self.cumulative
            .partition_point(|&c| c < uniform)
            .min(self.cumulative.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_ranks_are_drawn_far_more_often_than_high_ones() {
        let zipf = Zipf::new(100, 1.0);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 100];
        for _ in 0..100_000 {
            counts[zipf.sample(rng.f64())] += 1;
        }
        assert!(counts[0] > 10 * counts[50], "{counts:?}");
        assert!(counts[99] > 0, "the last rank is still drawn: {counts:?}");
    }
}
