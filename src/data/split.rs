//! Seeded, stratified choices of rows (validation split, test split for sets without one,
//! training subsets). Done on the host with their own generator, so they do not depend on the
//! device or on libtorch's generator state.

/// splitmix64: small, fast and plenty for shuffling indices.
pub struct HostRng(u64);

impl HostRng {
    pub fn new(seed: u64) -> Self {
        HostRng(seed ^ 0x5EED_5EED_5EED_5EED)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0), without modulo bias worth caring about at these sizes.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Rows of each class, in order of first appearance of the class value (sorted by class).
fn by_class(labels: &[i64]) -> Vec<Vec<usize>> {
    let k = labels.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut groups = vec![vec![]; k];
    for (i, &y) in labels.iter().enumerate() {
        groups[y as usize].push(i);
    }
    groups
}

/// Splits `total` over groups of sizes `counts` proportionally (largest remainder).
fn allocate(counts: &[usize], total: usize) -> Vec<usize> {
    let n: usize = counts.iter().sum();
    if n == 0 {
        return vec![0; counts.len()];
    }
    let exact: Vec<f64> = counts
        .iter()
        .map(|&c| c as f64 * total as f64 / n as f64)
        .collect();
    let mut take: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let mut left = total.saturating_sub(take.iter().sum());
    for i in order {
        if left == 0 {
            break;
        }
        if take[i] < counts[i] {
            take[i] += 1;
            left -= 1;
        }
    }
    take
}

/// Chooses `n` rows with the class proportions of `labels` (sorted indices).
pub fn stratified_subset(labels: &[i64], n: usize, seed: u64) -> Vec<usize> {
    let mut groups = by_class(labels);
    let counts: Vec<usize> = groups.iter().map(Vec::len).collect();
    let take = allocate(&counts, n.min(labels.len()));
    let mut rng = HostRng::new(seed);
    let mut chosen = vec![];
    for (g, k) in groups.iter_mut().zip(take) {
        rng.shuffle(g);
        chosen.extend_from_slice(&g[..k]);
    }
    chosen.sort_unstable();
    chosen
}

/// Splits rows into (rest, held_out), `held_out` holding `fraction` of each class.
pub fn stratified_split(labels: &[i64], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let n_out = (fraction * labels.len() as f64).round() as usize;
    let held = stratified_subset(labels, n_out, seed);
    let mut is_held = vec![false; labels.len()];
    held.iter().for_each(|&i| is_held[i] = true);
    let rest = (0..labels.len()).filter(|&i| !is_held[i]).collect();
    (rest, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<i64> {
        // 60 % class 0, 30 % class 1, 10 % class 2, interleaved.
        (0..1000)
            .map(|i| match i % 10 {
                0..=5 => 0,
                6..=8 => 1,
                _ => 2,
            })
            .collect()
    }

    fn proportions(labels: &[i64], idx: &[usize]) -> Vec<f64> {
        let mut c = [0usize; 3];
        idx.iter().for_each(|&i| c[labels[i] as usize] += 1);
        c.iter().map(|&x| x as f64 / idx.len() as f64).collect()
    }

    #[test]
    fn subsets_keep_class_proportions() {
        let y = labels();
        let s = stratified_subset(&y, 200, 1);
        assert_eq!(s.len(), 200);
        assert_eq!(proportions(&y, &s), vec![0.6, 0.3, 0.1]);
        let odd = stratified_subset(&y, 7, 1);
        assert_eq!(odd.len(), 7);
        let mut dedup = s.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), s.len());
    }

    #[test]
    fn splits_are_disjoint_complete_seeded_and_stratified() {
        let y = labels();
        let (rest, held) = stratified_split(&y, 0.2, 9);
        assert_eq!((rest.len(), held.len()), (800, 200));
        let mut all: Vec<usize> = rest.iter().chain(&held).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(proportions(&y, &held), vec![0.6, 0.3, 0.1]);
        assert_eq!(stratified_split(&y, 0.2, 9).1, held);
        assert_ne!(stratified_split(&y, 0.2, 10).1, held);
    }
}
