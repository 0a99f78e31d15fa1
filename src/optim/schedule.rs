//! Learning-rate schedules as a factor of each group's base learning rate, evaluated from the
//! position in training (so a resumed run needs no scheduler state).

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleName {
    Constant,
    /// × gamma every `step_size` epochs.
    Step,
    /// × gamma at each of `milestones` (epochs).
    Multistep,
    /// × gamma every epoch.
    Exponential,
    /// Cosine annealing to `min_factor` over `t_max` epochs (0 = the whole run); with
    /// `t_mult`, warm restarts whose periods grow by that factor (SGDR).
    Cosine,
    /// The DANN schedule μ_p = μ0 / (1 + α p)^β, p = training progress in [0, 1].
    Dann,
}

/// `[optim.schedule]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    pub name: ScheduleName,
    pub step_size: f64,
    pub gamma: f64,
    pub milestones: Vec<f64>,
    pub t_max: f64,
    pub t_mult: f64,
    pub min_factor: f64,
    /// Linear warm-up over this many epochs, from `warmup_start` × the scheduled rate.
    pub warmup_epochs: f64,
    pub warmup_start: f64,
    pub alpha: f64,
    pub beta: f64,
    /// Evaluate at every step (fractional epochs) instead of once per epoch.
    pub per_step: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            name: ScheduleName::Constant,
            step_size: 30.0,
            gamma: 0.1,
            milestones: vec![],
            t_max: 0.0,
            t_mult: 1.0,
            min_factor: 0.0,
            warmup_epochs: 0.0,
            warmup_start: 0.0,
            alpha: 10.0,
            beta: 0.75,
            per_step: false,
        }
    }
}

impl ScheduleConfig {
    pub fn check(&self) -> Result<()> {
        if self.step_size <= 0.0
            || self.gamma <= 0.0
            || self.t_max < 0.0
            || self.t_mult < 1.0
            || self.warmup_epochs < 0.0
        {
            bail!("optim.schedule: step_size and gamma must be > 0, t_max >= 0, t_mult >= 1, warmup_epochs >= 0");
        }
        Ok(())
    }

    /// The factor at `epoch` (completed epochs) and `frac` ∈ [0, 1) of the current one, in a
    /// run of `total` epochs.
    pub fn factor(&self, epoch: usize, frac: f64, total: usize) -> f64 {
        let t = epoch as f64 + if self.per_step { frac } else { 0.0 };
        let total = total.max(1) as f64;
        let f = match self.name {
            ScheduleName::Constant => 1.0,
            ScheduleName::Step => self.gamma.powf((t / self.step_size).floor()),
            ScheduleName::Multistep => self
                .gamma
                .powi(self.milestones.iter().filter(|&&m| m <= t).count() as i32),
            ScheduleName::Exponential => self.gamma.powf(t),
            ScheduleName::Cosine => {
                let (mut period, mut start) =
                    (if self.t_max > 0.0 { self.t_max } else { total }, 0.0);
                while t >= start + period && self.t_max > 0.0 {
                    start += period;
                    period *= self.t_mult;
                }
                let cur = ((t - start) / period).min(1.0);
                self.min_factor
                    + (1.0 - self.min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * cur).cos())
            }
            ScheduleName::Dann => dann_lr_factor(t / total, self.alpha, self.beta),
        };
        if t < self.warmup_epochs {
            f * (self.warmup_start + (1.0 - self.warmup_start) * t / self.warmup_epochs)
        } else {
            f
        }
    }
}

/// The DANN learning-rate factor μ_p/μ₀ = 1/(1 + α p)^β at training progress p ∈ [0, 1]
/// (Ganin et al. 2016, §5.2.2: α = 10, β = 0.75).
pub fn dann_lr_factor(p: f64, alpha: f64, beta: f64) -> f64 {
    1.0 / (1.0 + alpha * p).powf(beta)
}

/// The DANN adaptation factor λ_p = 2/(1 + e^(−γ p)) − 1 at training progress p ∈ [0, 1]
/// (Ganin et al. 2016, §5.2.2: γ = 10): 0 at the start, so the domain classifier's noisy early
/// signal does not reach the features, rising to nearly 1.
pub fn dann_lambda(p: f64, gamma: f64) -> f64 {
    2.0 / (1.0 + (-gamma * p).exp()) - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(name: ScheduleName) -> ScheduleConfig {
        ScheduleConfig {
            name,
            ..Default::default()
        }
    }

    #[test]
    fn schedules_follow_their_formulas() {
        assert_eq!(s(ScheduleName::Constant).factor(7, 0.5, 10), 1.0);
        let step = ScheduleConfig {
            step_size: 2.0,
            gamma: 0.5,
            ..s(ScheduleName::Step)
        };
        assert_eq!(
            [0, 1, 2, 3, 4].map(|e| step.factor(e, 0.0, 10)),
            [1.0, 1.0, 0.5, 0.5, 0.25]
        );
        let multi = ScheduleConfig {
            milestones: vec![3.0, 5.0],
            gamma: 0.1,
            ..s(ScheduleName::Multistep)
        };
        assert!((multi.factor(5, 0.0, 10) - 0.01).abs() < 1e-15 && multi.factor(2, 0.0, 10) == 1.0);
        let exp = ScheduleConfig {
            gamma: 0.9,
            ..s(ScheduleName::Exponential)
        };
        assert!((exp.factor(2, 0.0, 10) - 0.81).abs() < 1e-12);
        let cos = s(ScheduleName::Cosine);
        assert!((cos.factor(5, 0.0, 10) - 0.5).abs() < 1e-12 && cos.factor(0, 0.0, 10) == 1.0);
        // SGDR: periods 2, 4: restart at epochs 2 and 6.
        let sgdr = ScheduleConfig {
            t_max: 2.0,
            t_mult: 2.0,
            ..s(ScheduleName::Cosine)
        };
        assert_eq!(sgdr.factor(2, 0.0, 20), 1.0);
        assert!((sgdr.factor(4, 0.0, 20) - 0.5).abs() < 1e-12);
        assert_eq!(sgdr.factor(6, 0.0, 20), 1.0);
        // DANN: μ_p = 1/(1+10p)^0.75, per step.
        let dann = ScheduleConfig {
            per_step: true,
            ..s(ScheduleName::Dann)
        };
        assert!((dann.factor(5, 0.0, 10) - 6f64.powf(-0.75)).abs() < 1e-12);
        assert!(dann.factor(5, 0.5, 10) < dann.factor(5, 0.0, 10));
        // The DANN schedules at p = 0, 0.5, 1 (μ₀ = 0.01, α = γ = 10, β = 0.75).
        let mu = |p| 0.01 * dann_lr_factor(p, 10.0, 0.75);
        assert_eq!(mu(0.0), 0.01);
        assert!((mu(0.5) - 0.01 / 6f64.powf(0.75)).abs() < 1e-15);
        assert!((mu(0.5) - 0.002_608_474_300).abs() < 1e-11);
        assert!((mu(1.0) - 0.01 / 11f64.powf(0.75)).abs() < 1e-15);
        assert!((mu(1.0) - 0.001_655_600_261).abs() < 1e-11);
        assert_eq!(dann_lambda(0.0, 10.0), 0.0);
        assert!((dann_lambda(0.5, 10.0) - 0.986_614_298_151).abs() < 1e-11);
        assert!((dann_lambda(1.0, 10.0) - 0.999_909_204_263).abs() < 1e-11);
        let warm = ScheduleConfig {
            warmup_epochs: 4.0,
            warmup_start: 0.2,
            per_step: true,
            ..s(ScheduleName::Constant)
        };
        assert!((warm.factor(2, 0.0, 10) - 0.6).abs() < 1e-12 && warm.factor(4, 0.0, 10) == 1.0);
        assert!(ScheduleConfig {
            t_mult: 0.5,
            ..s(ScheduleName::Cosine)
        }
        .check()
        .is_err());
    }
}
