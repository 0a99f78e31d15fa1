//! Exact dynamic programming for finite-horizon tabular MDPs (Laidlaw et al., the effective
//! horizon): optimal and random-policy values, Q-value iteration started from the random
//! policy's Q, the k-QVI-solvability test with worst-case tie-breaks, greedy returns per k,
//! and the exact return of any time-indexed deterministic policy.
//!
//! Conventions (as `EffectiveHorizon.jl/src/value_iteration.jl` of the official code): horizon
//! T, undiscounted returns, steps t = 0 … T−1 (the code's 1 … T), one start state. A Q table is
//! indexed [t][s][a] and flattened. Q¹ = Q^{π_rand} (uniform random policy);
//!   Q^{i+1}_t(s, a) = E[ r + max_{a'} Q^i_{t+1}(s', a') ]   for t < T−1,
//!   Q^{i+1}_{T−1}(s, a) = Q^i_{T−1}(s, a) = E[r]            (the last step is one-step already),
//! and a value after a terminal transition or after step T−1 is 0. The MDP is k-QVI-solvable
//! if every action greedy for Q^k (any tie-break) is optimal at every state some such greedy
//! policy reaches; k* is the smallest such k. Ties are actions within [`TIE`] (relative) of the
//! maximum: the official code compares floats exactly; a tolerance makes the worst case
//! robust to rounding in symmetric layouts (exact ties computed along different sums).

/// An outcome of (t, s, a): probability, next state (or [`TERMINAL`]) and reward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    pub prob: f64,
    pub next: u32,
    pub reward: f64,
}

/// The episode ends with this transition.
pub const TERMINAL: u32 = u32::MAX;

/// Outcomes per (s, a) at index s·A + a.
pub type Kernel = Vec<Vec<Outcome>>;

/// Relative tolerance for ties among greedy actions.
pub const TIE: f64 = 1e-9;
/// Absolute tolerance for "this action is optimal": the official code's REWARD_PRECISION.
pub const OPTIMAL_TOL: f64 = 1e-4;

/// A finite-horizon tabular MDP whose transition kernel at step t is
/// `kernels[min(t, kernels.len() − 1)]` (sticky actions: no stickiness at t = 0).
#[derive(Debug, Clone)]
pub struct Mdp {
    pub states: usize,
    pub actions: usize,
    pub horizon: usize,
    pub start: usize,
    pub kernels: Vec<Kernel>,
}

impl Mdp {
    pub fn outcomes(&self, t: usize, s: usize, a: usize) -> &[Outcome] {
        &self.kernels[t.min(self.kernels.len() - 1)][s * self.actions + a]
    }

    /// Checks sizes, probabilities (non-negative, summing to 1) and next-state indices.
    pub fn validate(&self) -> anyhow::Result<()> {
        let sa = self.states * self.actions;
        if self.kernels.is_empty() || self.horizon == 0 || self.start >= self.states {
            anyhow::bail!("an MDP needs a kernel, a horizon ≥ 1 and a start state in range");
        }
        for k in &self.kernels {
            if k.len() != sa {
                anyhow::bail!("a kernel has {} rows, expected S·A = {sa}", k.len());
            }
            for (i, row) in k.iter().enumerate() {
                let total: f64 = row.iter().map(|o| o.prob).sum();
                if row.is_empty() || (total - 1.0).abs() > 1e-12 || row.iter().any(|o| o.prob < 0.0)
                {
                    anyhow::bail!(
                        "outcomes of (s, a) = {:?} do not form a distribution",
                        (i / self.actions, i % self.actions)
                    );
                }
                if row
                    .iter()
                    .any(|o| o.next != TERMINAL && o.next as usize >= self.states)
                {
                    anyhow::bail!("a next state of row {i} is out of range");
                }
            }
        }
        Ok(())
    }

    /// One outcome of (t, s, a) drawn with a uniform number u ∈ [0, 1).
    pub fn sample(&self, t: usize, s: usize, a: usize, u: f64) -> Outcome {
        let out = self.outcomes(t, s, a);
        let mut acc = 0.0;
        for o in out {
            acc += o.prob;
            if u < acc {
                return *o;
            }
        }
        *out.last().expect("validated: non-empty outcomes")
    }

    fn idx(&self, t: usize, s: usize) -> usize {
        (t * self.states + s) * self.actions
    }

    /// E[r + next(t+1, s')] over the outcomes of (t, s, a), `next` read only for t < T−1 and
    /// non-terminal s'.
    fn backup(&self, t: usize, s: usize, a: usize, next: impl Fn(usize) -> f64) -> f64 {
        self.outcomes(t, s, a)
            .iter()
            .map(|o| {
                let cont = if o.next == TERMINAL || t + 1 == self.horizon {
                    0.0
                } else {
                    next(o.next as usize)
                };
                o.prob * (o.reward + cont)
            })
            .sum()
    }

    /// A Q table filled backwards, V_t(s) = agg(Q_t(s, ·)).
    fn backward(&self, agg: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let (s_n, a_n, h) = (self.states, self.actions, self.horizon);
        let mut q = vec![0.0; h * s_n * a_n];
        let mut v_next = vec![0.0; s_n];
        for t in (0..h).rev() {
            let mut v = vec![0.0; s_n];
            for (s, vs) in v.iter_mut().enumerate() {
                let base = self.idx(t, s);
                for a in 0..a_n {
                    q[base + a] = self.backup(t, s, a, |n| v_next[n]);
                }
                *vs = agg(&q[base..base + a_n]);
            }
            v_next = v;
        }
        q
    }

    /// Q^{π_rand}: the uniformly random policy's Q.
    pub fn random_q(&self) -> Vec<f64> {
        self.backward(|r| r.iter().sum::<f64>() / r.len() as f64)
    }

    /// Q*: the optimal Q.
    pub fn optimal_q(&self) -> Vec<f64> {
        self.backward(max)
    }

    /// Q with the reward of the step only (the start of the effective planning window test).
    pub fn reward_q(&self) -> Vec<f64> {
        let mut q = vec![0.0; self.horizon * self.states * self.actions];
        for t in 0..self.horizon {
            for s in 0..self.states {
                for a in 0..self.actions {
                    q[self.idx(t, s) + a] = self.backup(t, s, a, |_| 0.0);
                }
            }
        }
        q
    }

    /// V_0(start) of a Q table under `agg` (max for Q*, the mean for Q^{π_rand}).
    pub fn start_value(&self, q: &[f64], agg: impl Fn(&[f64]) -> f64) -> f64 {
        let b = self.idx(0, self.start);
        agg(&q[b..b + self.actions])
    }

    /// One step of Q-value iteration: Q'_t = E[r + max Q_{t+1}(s', ·)] for t < T−1; the last
    /// step is kept.
    pub fn qvi_step(&self, q: &[f64]) -> Vec<f64> {
        let (s_n, a_n, h) = (self.states, self.actions, self.horizon);
        let mut out = q.to_vec();
        for t in 0..h.saturating_sub(1) {
            for s in 0..s_n {
                for a in 0..a_n {
                    out[self.idx(t, s) + a] = self.backup(t, s, a, |n| {
                        let b = self.idx(t + 1, n);
                        max(&q[b..b + a_n])
                    });
                }
            }
        }
        out
    }

    /// The greedy actions of one row: within [`TIE`] of the maximum (relative, at least
    /// absolute 1e-12).
    pub fn greedy_set(row: &[f64]) -> impl Iterator<Item = usize> + '_ {
        let m = max(row);
        let tol = TIE * m.abs().max(1e-3);
        row.iter()
            .enumerate()
            .filter(move |(_, &x)| x >= m - tol)
            .map(|(a, _)| a)
    }

    /// The worst (`worst = true`) or best return from the start over all policies greedy for
    /// `q` with any tie-break.
    pub fn greedy_return(&self, q: &[f64], worst: bool) -> f64 {
        let (s_n, a_n, h) = (self.states, self.actions, self.horizon);
        let mut v_next = vec![0.0; s_n];
        for t in (0..h).rev() {
            let mut v = vec![0.0; s_n];
            for (s, vs) in v.iter_mut().enumerate() {
                let b = self.idx(t, s);
                let vals =
                    Self::greedy_set(&q[b..b + a_n]).map(|a| self.backup(t, s, a, |n| v_next[n]));
                *vs = if worst {
                    vals.fold(f64::INFINITY, f64::min)
                } else {
                    vals.fold(f64::NEG_INFINITY, f64::max)
                };
            }
            v_next = v;
        }
        v_next[self.start]
    }

    /// Whether every policy greedy for `q` (any tie-break) takes only optimal actions at every
    /// state it can reach; `q_star` is [`Mdp::optimal_q`].
    pub fn greedy_is_optimal(&self, q: &[f64], q_star: &[f64]) -> bool {
        let (s_n, a_n, h) = (self.states, self.actions, self.horizon);
        let mut live = vec![false; s_n];
        live[self.start] = true;
        for t in 0..h {
            let mut next = vec![false; s_n];
            for s in (0..s_n).filter(|&s| live[s]) {
                let b = self.idx(t, s);
                let v_star = max(&q_star[b..b + a_n]);
                for a in Self::greedy_set(&q[b..b + a_n]) {
                    if q_star[b + a] < v_star - OPTIMAL_TOL {
                        return false;
                    }
                    for o in self.outcomes(t, s, a) {
                        if o.next != TERMINAL && o.prob > 0.0 {
                            next[o.next as usize] = true;
                        }
                    }
                }
            }
            live = next;
        }
        true
    }

    /// The smallest k ≤ `k_max` for which the policies greedy for the k-th iterate, starting
    /// from `q1` (Q^{π_rand} for k*, the step rewards for the planning window), are all
    /// optimal; None if none up to `k_max`.
    pub fn min_k(&self, q1: Vec<f64>, k_max: usize) -> Option<usize> {
        let q_star = self.optimal_q();
        let mut q = q1;
        for k in 1..=k_max {
            if self.greedy_is_optimal(&q, &q_star) {
                return Some(k);
            }
            if k < k_max {
                q = self.qvi_step(&q);
            }
        }
        None
    }

    /// (worst, best) greedy returns of Q¹ … Q^{k_max}, Q¹ = Q^{π_rand}.
    pub fn greedy_returns(&self, k_max: usize) -> Vec<(f64, f64)> {
        let mut q = self.random_q();
        let mut out = vec![];
        for k in 1..=k_max {
            out.push((self.greedy_return(&q, true), self.greedy_return(&q, false)));
            if k < k_max {
                q = self.qvi_step(&q);
            }
        }
        out
    }

    /// The exact return from the start of the deterministic policy a = policy(t, s), by a
    /// forward pass over the state distribution.
    pub fn policy_return(&self, policy: impl Fn(usize, usize) -> usize) -> f64 {
        let mut d = vec![0.0; self.states];
        d[self.start] = 1.0;
        let mut total = 0.0;
        let mut live = vec![self.start];
        for t in 0..self.horizon {
            let mut next = vec![0.0; self.states];
            let mut next_live = vec![];
            for &s in &live {
                let p = d[s];
                for o in self.outcomes(t, s, policy(t, s)) {
                    total += p * o.prob * o.reward;
                    if o.next != TERMINAL && t + 1 < self.horizon {
                        let n = o.next as usize;
                        if next[n] == 0.0 {
                            next_live.push(n);
                        }
                        next[n] += p * o.prob;
                    }
                }
            }
            d = next;
            live = next_live;
        }
        total
    }
}

pub fn max(row: &[f64]) -> f64 {
    row.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

pub fn mean(row: &[f64]) -> f64 {
    row.iter().sum::<f64>() / row.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(next: u32, reward: f64) -> Vec<Outcome> {
        vec![Outcome {
            prob: 1.0,
            next,
            reward,
        }]
    }

    /// Two states, two actions, T = 2. From s0: a0 → s0 with r = 1; a1 → s1 with r = 0 (half
    /// the time) or ends with r = 0.5. From s1: a0 ends with r = 3, a1 stays with r = 0.
    fn tiny() -> Mdp {
        let k: Kernel = vec![
            det(0, 1.0),
            vec![
                Outcome {
                    prob: 0.5,
                    next: 1,
                    reward: 0.0,
                },
                Outcome {
                    prob: 0.5,
                    next: TERMINAL,
                    reward: 0.5,
                },
            ],
            det(TERMINAL, 3.0),
            det(1, 0.0),
        ];
        Mdp {
            states: 2,
            actions: 2,
            horizon: 2,
            start: 0,
            kernels: vec![k],
        }
    }

    #[test]
    fn dp_values_of_a_tiny_mdp_match_the_hand_computation() {
        let m = tiny();
        m.validate().unwrap();
        // t = 1 (last step): Q(s0) = (1, 0.25), Q(s1) = (3, 0). Optimal V1 = (1, 3); random
        // V1 = (0.625, 1.5).
        // t = 0: Q*(s0, a0) = 1 + 1 = 2; Q*(s0, a1) = 0.5·(0 + 3) + 0.5·0.5 = 1.75.
        let q = m.optimal_q();
        let want_star = [2.0, 1.75, 3.0 + 0.0, 0.0 + 3.0, 1.0, 0.25, 3.0, 0.0];
        // Q*(s1, ·) at t = 0: a0 ends with 3; a1 stays, then 3 → 3.
        for (i, w) in want_star.iter().enumerate() {
            assert!((q[i] - w).abs() < 1e-12, "Q*[{i}] = {} vs {w}", q[i]);
        }
        assert!((m.start_value(&q, max) - 2.0).abs() < 1e-12);
        // Random: Q(s0, a0) = 1 + 0.625; Q(s0, a1) = 0.5·1.5 + 0.25 = 1.0.
        let qr = m.random_q();
        assert!((qr[0] - 1.625).abs() < 1e-12 && (qr[1] - 1.0).abs() < 1e-12);
        assert!((m.start_value(&qr, mean) - 1.3125).abs() < 1e-12);
        // Policies: always a1 returns 0.5·(0 + 0) + 0.25 → 0.25 + 0 = 0.25 at t=0 plus t=1
        // from s1 with a1: 0. Always a0: 2.
        assert!((m.policy_return(|_, _| 1) - 0.25).abs() < 1e-12);
        assert!((m.policy_return(|_, _| 0) - 2.0).abs() < 1e-12);
        assert!((m.policy_return(|t, _| if t == 0 { 1 } else { 0 }) - 1.75).abs() < 1e-12);
        // Q¹ = Q^rand is already greedy-optimal here.
        assert_eq!(m.min_k(m.random_q(), 5), Some(1));
        assert_eq!(m.greedy_returns(2)[0], (2.0, 2.0));
    }

    /// A chain that needs k = 2: at the start, a0 pays 0.6 at once and ends; a1 leads to s1,
    /// where a0 pays 1 and a1 pays 0 (both end). Q¹(s0, a1) = E_rand = 0.5 < 0.6, so greedy on
    /// Q¹ takes the myopic 0.6; one Q-iteration gives Q²(s0, a1) = 1 > 0.6.
    fn needs_two() -> Mdp {
        let k: Kernel = vec![
            det(TERMINAL, 0.6),
            det(1, 0.0),
            det(TERMINAL, 1.0),
            det(TERMINAL, 0.0),
        ];
        Mdp {
            states: 2,
            actions: 2,
            horizon: 2,
            start: 0,
            kernels: vec![k],
        }
    }

    #[test]
    fn the_k_qvi_test_finds_k_two_on_an_mdp_built_to_need_it() {
        let m = needs_two();
        m.validate().unwrap();
        assert_eq!(m.min_k(m.random_q(), 5), Some(2));
        assert_eq!(m.min_k(m.random_q(), 1), None);
        let g = m.greedy_returns(3);
        assert_eq!(g[0], (0.6, 0.6));
        assert_eq!(g[1], (1.0, 1.0));
        assert_eq!(g[2], (1.0, 1.0));
        // The planning window from rewards alone: r(s0) = (0.6, 0) → myopic; one backup fixes it.
        assert_eq!(m.min_k(m.reward_q(), 5), Some(2));
    }

    #[test]
    fn ties_are_broken_for_the_worst() {
        // Both actions at s0 have Q¹ = 0.5 but only a1 is optimal: a0 ends with 0.5, a1 leads
        // to s1 where a0 pays 1, a1 pays 0 (random mean 0.5). Worst-case greedy on Q¹ takes
        // a0 (0.5); best-case takes a1 then a0 (1). k* = 2.
        let k: Kernel = vec![
            det(TERMINAL, 0.5),
            det(1, 0.0),
            det(TERMINAL, 1.0),
            det(TERMINAL, 0.0),
        ];
        let m = Mdp {
            states: 2,
            actions: 2,
            horizon: 2,
            start: 0,
            kernels: vec![k],
        };
        assert_eq!(m.greedy_returns(1)[0], (0.5, 1.0));
        assert_eq!(m.min_k(m.random_q(), 5), Some(2));
    }
}
