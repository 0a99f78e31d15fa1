//! CartPole with the standard dynamics (Barto, Sutton & Anderson 1983 as in Gym's
//! `CartPole-v1`): a pole of half-length 0.5 m and mass 0.1 kg on a 1 kg cart, a force of
//! ±10 N, explicit Euler with τ = 0.02 s; the episode terminates when |x| > 2.4 or
//! |θ| > 12° and is truncated after 500 steps; reward 1 per step including the terminating one,
//! so a return is the episode length. The initial state is uniform in [−0.05, 0.05]⁴.
//!
//! `State` is one cart in f64 (the reference); `Batch` is a population of carts as tensors
//! on the run's device, stepped with one set of element-wise ops for all of them (no host
//! sync per step).

use tch::{Device, Kind, Tensor};

pub const GRAVITY: f64 = 9.8;
pub const MASS_CART: f64 = 1.0;
pub const MASS_POLE: f64 = 0.1;
pub const TOTAL_MASS: f64 = MASS_CART + MASS_POLE;
/// Half the pole's length.
pub const LENGTH: f64 = 0.5;
pub const POLE_MASS_LENGTH: f64 = MASS_POLE * LENGTH;
pub const FORCE: f64 = 10.0;
pub const TAU: f64 = 0.02;
pub const X_LIMIT: f64 = 2.4;
/// 12 degrees in radians.
pub const THETA_LIMIT: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
pub const MAX_STEPS: usize = 500;
pub const OBS: i64 = 4;
pub const ACTIONS: i64 = 2;

/// (x, ẋ, θ, θ̇) of one cart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State(pub [f64; 4]);

impl State {
    /// One Euler step with action 0 (push left) or 1 (push right); returns whether the new
    /// state is terminal.
    pub fn step(&mut self, action: usize) -> bool {
        let [x, x_dot, th, th_dot] = self.0;
        let force = if action == 1 { FORCE } else { -FORCE };
        let (sin, cos) = th.sin_cos();
        let temp = (force + POLE_MASS_LENGTH * th_dot * th_dot * sin) / TOTAL_MASS;
        let th_acc = (GRAVITY * sin - cos * temp)
            / (LENGTH * (4.0 / 3.0 - MASS_POLE * cos * cos / TOTAL_MASS));
        let x_acc = temp - POLE_MASS_LENGTH * th_acc * cos / TOTAL_MASS;
        self.0 = [
            x + TAU * x_dot,
            x_dot + TAU * x_acc,
            th + TAU * th_dot,
            th_dot + TAU * th_acc,
        ];
        self.terminal()
    }

    pub fn terminal(&self) -> bool {
        let [x, _, th, _] = self.0;
        !(-X_LIMIT..=X_LIMIT).contains(&x) || !(-THETA_LIMIT..=THETA_LIMIT).contains(&th)
    }

    /// The initial state of episode `key`: four uniforms in [−0.05, 0.05] from the keyed
    /// stream (so an episode is the same on every device and in every batch).
    pub fn initial(key: u64) -> State {
        let u = |i| super::seeds::uniform(key, i) * 0.1 - 0.05;
        State([u(0), u(1), u(2), u(3)])
    }
}

/// A population of carts: the four state variables as [B] tensors, the returns so far and
/// which episodes are still running.
pub struct Batch {
    pub x: Tensor,
    pub x_dot: Tensor,
    pub th: Tensor,
    pub th_dot: Tensor,
    pub alive: Tensor,
    pub returns: Tensor,
}

impl Batch {
    /// Carts starting from `states`, as `kind` on `device`.
    pub fn new(states: &[State], kind: Kind, device: Device) -> Batch {
        let col = |j: usize| {
            let v: Vec<f64> = states.iter().map(|s| s.0[j]).collect();
            Tensor::from_slice(&v).to_kind(kind).to_device(device)
        };
        let b = states.len() as i64;
        Batch {
            x: col(0),
            x_dot: col(1),
            th: col(2),
            th_dot: col(3),
            alive: Tensor::ones([b], (Kind::Bool, device)),
            returns: Tensor::zeros([b], (Kind::Float, device)),
        }
    }

    /// Observations [B, 4] (float).
    pub fn obs(&self) -> Tensor {
        Tensor::stack(&[&self.x, &self.x_dot, &self.th, &self.th_dot], 1).to_kind(Kind::Float)
    }

    /// One step of every cart with actions [B] (0/1, any integer kind). Finished episodes keep
    /// stepping but no longer count.
    pub fn step(&mut self, action: &Tensor) {
        let kind = self.x.kind();
        let force = action.to_kind(kind) * (2.0 * FORCE) - FORCE;
        let sin = self.th.sin();
        let cos = self.th.cos();
        let temp = (force + &self.th_dot * &self.th_dot * &sin * POLE_MASS_LENGTH) / TOTAL_MASS;
        let th_acc = (&sin * GRAVITY - &cos * &temp)
            / ((&cos * &cos * (-MASS_POLE / TOTAL_MASS) + 4.0 / 3.0) * LENGTH);
        let x_acc = &temp - &th_acc * &cos * (POLE_MASS_LENGTH / TOTAL_MASS);
        let _ = self.x.g_add_(&(&self.x_dot * TAU));
        let _ = self.x_dot.g_add_(&(x_acc * TAU));
        let _ = self.th.g_add_(&(&self.th_dot * TAU));
        let _ = self.th_dot.g_add_(&(th_acc * TAU));
        let _ = self.returns.g_add_(&self.alive.to_kind(Kind::Float));
        let ok = self
            .x
            .abs()
            .le(X_LIMIT)
            .logical_and(&self.th.abs().le(THETA_LIMIT));
        self.alive = self.alive.logical_and(&ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_from_rest_matches_the_closed_form() {
        // From (0, 0, 0, 0) pushing right: temp = F/M = 100/11, θ̈ = −temp/(l(4/3 − m/M))
        // = −600/41, ẍ = temp − ml θ̈/M = 4400/451.
        let mut s = State([0.0; 4]);
        assert!(!s.step(1));
        let want = [0.0, 0.02 * 4400.0 / 451.0, 0.0, -0.02 * 600.0 / 41.0];
        for (g, w) in s.0.iter().zip(want) {
            assert!((g - w).abs() < 1e-14, "{:?}", s.0);
        }
        // Second step: x and θ move by τ times the first step's velocities.
        let mut t = s;
        t.step(1);
        assert!((t.0[0] - 0.02 * want[1]).abs() < 1e-15);
        assert!((t.0[2] - 0.02 * want[3]).abs() < 1e-15);
        // Symmetry: pushing left mirrors the state.
        let mut l = State([0.0; 4]);
        l.step(0);
        for (a, b) in l.0.iter().zip(s.0) {
            assert!((a + b).abs() < 1e-15);
        }
    }

    #[test]
    fn termination_at_the_angle_and_position_limits() {
        assert!(!State([0.0, 0.0, 0.2, 0.0]).terminal());
        assert!(State([0.0, 0.0, 0.21, 0.0]).terminal());
        assert!(State([0.0, 0.0, -0.21, 0.0]).terminal());
        assert!(State([2.41, 0.0, 0.0, 0.0]).terminal());
        assert!(!State([2.39, 0.0, 0.0, 0.0]).terminal());
        // Always pushing right from rest: the pole falls left past 12° after a few steps.
        let mut s = State([0.0; 4]);
        let mut n = 1;
        while !s.step(1) {
            n += 1;
        }
        assert!((5..=15).contains(&n), "{n}");
        assert!(s.0[2] < -THETA_LIMIT);
    }

    #[test]
    fn tensor_batch_follows_the_scalar_trajectories_and_counts_returns() {
        let states: Vec<State> = (0..6).map(State::initial).collect();
        let mut b = Batch::new(&states, Kind::Double, Device::Cpu);
        let mut refs = states.clone();
        let mut ret = [0usize; 6];
        let mut done = [false; 6];
        for t in 0..60usize {
            // A fixed, state-independent action pattern per cart.
            let acts: Vec<i64> = (0..6).map(|i| ((t * (i + 1) / 3) % 2) as i64).collect();
            b.step(&Tensor::from_slice(&acts));
            for i in 0..6 {
                let term = refs[i].step(acts[i] as usize);
                if !done[i] {
                    ret[i] += 1;
                    done[i] = term;
                }
            }
            let bx = Vec::<f64>::try_from(&b.th).unwrap();
            for i in 0..6 {
                assert!((bx[i] - refs[i].0[2]).abs() < 1e-12, "{t} {i}");
            }
        }
        let r = Vec::<f32>::try_from(&b.returns).unwrap();
        for i in 0..6 {
            assert_eq!(r[i] as usize, ret[i]);
        }
        assert!(
            ret.iter().any(|&r| r < 60),
            "some cart should have fallen: {ret:?}"
        );
    }
}
