//! Agent-based lattice models, simulated per replicate on the host: the wolf–sheep–grass
//! predation model of NetLogo's "Wolf Sheep Predation" library model (sheep-wolves-grass
//! version; Wilensky 1997), moved onto a square torus lattice, with integer removal controls.
//!
//! One tick, in the NetLogo order:
//! 1. control: `u_sheep` sheep and `u_wolves` wolves, chosen uniformly at random, are removed
//!    (at most as many as there are);
//! 2. every sheep (those alive at the start of the tick, in the order of the list) turns and
//!    steps one cell along its heading (`move` below), loses 1 energy, eats the grass of its
//!    cell if it is green (the cell turns brown, energy += `sheep_gain`), dies if energy < 0,
//!    else reproduces with probability `sheep_reproduce` (energy halves, one offspring with the
//!    other half on a random neighbouring cell; offspring act from the next tick);
//! 3. every wolf moves the same way, loses 1 energy, eats one uniformly chosen sheep on its
//!    cell if there is one (the sheep dies, energy += `wolf_gain`), dies if energy < 0, else
//!    reproduces with probability `wolf_reproduce`;
//! 4. every brown cell: if its countdown is ≤ 0 it turns green and the countdown is reset to
//!    `regrowth`, else the countdown decreases by 1 — a cell eaten at tick t is green again
//!    at the end of tick t + `regrowth` (its `regrowth + 1`-th grass step).
//!
//! Move: NetLogo turns an agent by `rt random 50 lt random 50` (a turn of U{0..49} − U{0..49}
//! degrees, triangular on ±49°) and steps 1 forward. On the lattice the heading is one of the 8
//! Moore directions; the turn is that triangular angle rounded to 45°, i.e. ±45° with
//! probability (1 − 22.5/50)²/2 = 0.151 each, else straight on. Persistent headings matter: a
//! random walk revisits the cells it has grazed or hunted, which starves the wolves.
//! Offspring (`hatch 1 [rt random-float 360 fd 1]`) get a uniform heading and step once.
//!
//! Start (NetLogo `setup`): each cell green with probability ½ (countdown `regrowth`), else
//! brown with countdown uniform in 0..regrowth; sheep and wolves on uniform random cells with
//! uniform headings and energy uniform in 0..2·gain (integers, as NetLogo's `random`).
//!
//! Deviations from NetLogo: agents live on lattice cells with 8 headings instead of continuous
//! positions and headings (a diagonal step is √2 long); energies are f64 as in NetLogo, but the
//! initial energies are integers. Every birth and death is counted per tick (`TickStats`) so
//! the bookkeeping can be checked: S' = S − removed − starved − eaten + born.
//!
//! Replicates are independent: `Abm` holds one, driven by its own `SplitMix` stream. The
//! models' agent lists change length every tick and every move and meal is a data-dependent
//! branch, so a tensor version batched over replicates would spend its time on scatter/gather
//! launches; the host loop runs a 51×51, 300-tick replicate in a few milliseconds.

use crate::rng::SplitMix;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Parameters of the wolf–sheep–grass model (NetLogo defaults).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WolfSheepConfig {
    /// Lattice side (torus of side × side cells).
    pub side: usize,
    pub initial_sheep: usize,
    pub initial_wolves: usize,
    /// Energy a sheep gains from eating a green cell.
    pub sheep_gain: f64,
    /// Energy a wolf gains from eating a sheep.
    pub wolf_gain: f64,
    /// Per-tick reproduction probability of a sheep.
    pub sheep_reproduce: f64,
    /// Per-tick reproduction probability of a wolf.
    pub wolf_reproduce: f64,
    /// Ticks a brown cell takes to regrow.
    pub regrowth: u32,
}

impl Default for WolfSheepConfig {
    fn default() -> Self {
        WolfSheepConfig {
            side: 51,
            initial_sheep: 100,
            initial_wolves: 50,
            sheep_gain: 4.0,
            wolf_gain: 20.0,
            sheep_reproduce: 0.04,
            wolf_reproduce: 0.05,
            regrowth: 30,
        }
    }
}

impl WolfSheepConfig {
    pub fn check(&self, prefix: &str) -> Result<()> {
        if self.side == 0 || self.side > 1000 {
            bail!("{prefix}side must be in 1..=1000, got {}", self.side);
        }
        for (name, p) in [
            ("sheep_reproduce", self.sheep_reproduce),
            ("wolf_reproduce", self.wolf_reproduce),
        ] {
            if !(0.0..=1.0).contains(&p) {
                bail!("{prefix}{name} is a probability: it must be in [0, 1], got {p}");
            }
        }
        if !(self.sheep_gain >= 0.0 && self.wolf_gain >= 0.0) {
            bail!("{prefix}sheep_gain and {prefix}wolf_gain must be >= 0");
        }
        if self.regrowth == 0 {
            bail!("{prefix}regrowth must be >= 1 tick");
        }
        Ok(())
    }

    pub fn cells(&self) -> usize {
        self.side * self.side
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agent {
    pub cell: u32,
    pub energy: f64,
    /// One of the 8 Moore directions, counter-clockwise from east.
    pub heading: u8,
}

/// (dx, dy) of the 8 headings, counter-clockwise from east.
const DIRS: [(isize, isize); 8] = [
    (1, 0),
    (1, 1),
    (0, 1),
    (-1, 1),
    (-1, 0),
    (-1, -1),
    (0, -1),
    (1, -1),
];

/// Probability of each ±45° turn: NetLogo's triangular ±50° turn rounded to 45°.
pub const TURN: f64 = 0.5 * (1.0 - 22.5 / 50.0) * (1.0 - 22.5 / 50.0);

/// Population counts after a tick (or at the start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub sheep: usize,
    pub wolves: usize,
    /// Green cells.
    pub grass: usize,
}

/// Births and deaths of one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickStats {
    pub removed_sheep: usize,
    pub removed_wolves: usize,
    pub sheep_starved: usize,
    pub sheep_eaten: usize,
    pub sheep_born: usize,
    pub wolves_starved: usize,
    pub wolves_born: usize,
    pub grass_eaten: usize,
    pub grass_regrown: usize,
}

/// One replicate of the wolf–sheep–grass model.
#[derive(Debug, Clone)]
pub struct Abm {
    pub cfg: WolfSheepConfig,
    pub sheep: Vec<Agent>,
    pub wolves: Vec<Agent>,
    /// Per cell: green?
    pub green: Vec<bool>,
    /// Per cell: regrowth countdown (meaningful while brown).
    pub countdown: Vec<i32>,
    pub tick: u64,
    rng: SplitMix,
    /// Scratch: sheep indices per cell (counting sort), alive flags.
    cell_start: Vec<u32>,
    order: Vec<u32>,
    alive: Vec<bool>,
}

impl Abm {
    /// NetLogo's `setup` with the replicate's own random stream.
    pub fn new(cfg: &WolfSheepConfig, mut rng: SplitMix) -> Abm {
        let n = cfg.cells();
        let mut green = vec![false; n];
        let mut countdown = vec![0i32; n];
        for c in 0..n {
            if rng.uniform() < 0.5 {
                green[c] = true;
                countdown[c] = cfg.regrowth as i32;
            } else {
                countdown[c] = rng.below(cfg.regrowth as usize) as i32;
            }
        }
        let place = |count: usize, gain: f64, rng: &mut SplitMix| -> Vec<Agent> {
            (0..count)
                .map(|_| Agent {
                    cell: rng.below(n) as u32,
                    energy: rng.below(((2.0 * gain) as usize).max(1)) as f64,
                    heading: rng.below(8) as u8,
                })
                .collect()
        };
        let sheep = place(cfg.initial_sheep, cfg.sheep_gain, &mut rng);
        let wolves = place(cfg.initial_wolves, cfg.wolf_gain, &mut rng);
        Abm::from_parts(cfg, sheep, wolves, green, countdown, rng)
    }

    /// A hand-placed state (tests, restarts).
    pub fn from_parts(
        cfg: &WolfSheepConfig,
        sheep: Vec<Agent>,
        wolves: Vec<Agent>,
        green: Vec<bool>,
        countdown: Vec<i32>,
        rng: SplitMix,
    ) -> Abm {
        assert_eq!(green.len(), cfg.cells());
        assert_eq!(countdown.len(), cfg.cells());
        Abm {
            cfg: cfg.clone(),
            sheep,
            wolves,
            green,
            countdown,
            tick: 0,
            rng,
            cell_start: vec![],
            order: vec![],
            alive: vec![],
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            sheep: self.sheep.len(),
            wolves: self.wolves.len(),
            grass: self.green.iter().filter(|&&g| g).count(),
        }
    }

    /// The Moore neighbour of `cell` along `heading` on the torus (itself when side = 1).
    pub fn neighbour(side: usize, cell: u32, heading: u8) -> u32 {
        let (dx, dy) = DIRS[heading as usize % 8];
        let s = side as isize;
        let (x, y) = (
            (cell as usize % side) as isize,
            (cell as usize / side) as isize,
        );
        let nx = (x + dx).rem_euclid(s);
        let ny = (y + dy).rem_euclid(s);
        (ny * s + nx) as u32
    }

    /// NetLogo's `move` on the lattice: turn ±45° with probability `TURN` each, step once.
    fn walk(side: usize, a: &mut Agent, rng: &mut SplitMix) {
        let u = rng.uniform();
        if u < TURN {
            a.heading = (a.heading + 1) % 8;
        } else if u < 2.0 * TURN {
            a.heading = (a.heading + 7) % 8;
        }
        a.cell = Self::neighbour(side, a.cell, a.heading);
    }

    /// An offspring of `parent`: uniform heading, one step, `energy`.
    fn hatch(side: usize, parent: &Agent, energy: f64, rng: &mut SplitMix) -> Agent {
        let heading = rng.below(8) as u8;
        Agent {
            cell: Self::neighbour(side, parent.cell, heading),
            energy,
            heading,
        }
    }

    /// Removes `k` uniformly chosen agents (all when fewer); returns how many.
    fn remove(list: &mut Vec<Agent>, k: usize, rng: &mut SplitMix) -> usize {
        let k = k.min(list.len());
        for _ in 0..k {
            let i = rng.below(list.len());
            list.swap_remove(i);
        }
        k
    }

    /// One tick with `u_sheep` sheep and `u_wolves` wolves removed first.
    pub fn step(&mut self, u_sheep: usize, u_wolves: usize) -> TickStats {
        let mut st = TickStats::default();
        let side = self.cfg.side;
        let rng = &mut self.rng;
        st.removed_sheep = Self::remove(&mut self.sheep, u_sheep, rng);
        st.removed_wolves = Self::remove(&mut self.wolves, u_wolves, rng);

        // Sheep: move, metabolise, graze, starve, reproduce.
        let mut born = vec![];
        let mut kept = Vec::with_capacity(self.sheep.len() + 8);
        for mut a in self.sheep.drain(..) {
            Self::walk(side, &mut a, rng);
            a.energy -= 1.0;
            let c = a.cell as usize;
            if self.green[c] {
                self.green[c] = false;
                a.energy += self.cfg.sheep_gain;
                st.grass_eaten += 1;
            }
            if a.energy < 0.0 {
                st.sheep_starved += 1;
                continue;
            }
            if rng.uniform() < self.cfg.sheep_reproduce {
                a.energy /= 2.0;
                born.push(Self::hatch(side, &a, a.energy, rng));
                st.sheep_born += 1;
            }
            kept.push(a);
        }
        kept.extend(born);
        self.sheep = kept;

        // Sheep per cell (counting sort) for the wolves' meals.
        let n = self.cfg.cells();
        self.cell_start.clear();
        self.cell_start.resize(n + 1, 0);
        for a in &self.sheep {
            self.cell_start[a.cell as usize + 1] += 1;
        }
        for c in 0..n {
            self.cell_start[c + 1] += self.cell_start[c];
        }
        let mut fill = self.cell_start.clone();
        self.order.clear();
        self.order.resize(self.sheep.len(), 0);
        for (i, a) in self.sheep.iter().enumerate() {
            let c = a.cell as usize;
            self.order[fill[c] as usize] = i as u32;
            fill[c] += 1;
        }
        self.alive.clear();
        self.alive.resize(self.sheep.len(), true);

        // Wolves: move, metabolise, hunt, starve, reproduce.
        let mut born = vec![];
        let mut kept = Vec::with_capacity(self.wolves.len() + 8);
        for mut a in self.wolves.drain(..) {
            Self::walk(side, &mut a, rng);
            a.energy -= 1.0;
            let c = a.cell as usize;
            let (lo, hi) = (self.cell_start[c] as usize, self.cell_start[c + 1] as usize);
            let here: usize = (lo..hi)
                .filter(|&j| self.alive[self.order[j] as usize])
                .count();
            if here > 0 {
                let mut pick = rng.below(here);
                for j in lo..hi {
                    let i = self.order[j] as usize;
                    if self.alive[i] {
                        if pick == 0 {
                            self.alive[i] = false;
                            break;
                        }
                        pick -= 1;
                    }
                }
                a.energy += self.cfg.wolf_gain;
                st.sheep_eaten += 1;
            }
            if a.energy < 0.0 {
                st.wolves_starved += 1;
                continue;
            }
            if rng.uniform() < self.cfg.wolf_reproduce {
                a.energy /= 2.0;
                born.push(Self::hatch(side, &a, a.energy, rng));
                st.wolves_born += 1;
            }
            kept.push(a);
        }
        kept.extend(born);
        self.wolves = kept;
        if st.sheep_eaten > 0 {
            let alive = std::mem::take(&mut self.alive);
            let mut i = 0;
            self.sheep.retain(|_| {
                i += 1;
                alive[i - 1]
            });
            self.alive = alive;
        }

        // Grass regrowth.
        for c in 0..n {
            if !self.green[c] {
                if self.countdown[c] <= 0 {
                    self.green[c] = true;
                    self.countdown[c] = self.cfg.regrowth as i32;
                    st.grass_regrown += 1;
                } else {
                    self.countdown[c] -= 1;
                }
            }
        }
        self.tick += 1;
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(side: usize) -> WolfSheepConfig {
        WolfSheepConfig {
            side,
            initial_sheep: 0,
            initial_wolves: 0,
            sheep_reproduce: 0.0,
            wolf_reproduce: 0.0,
            regrowth: 3,
            ..Default::default()
        }
    }

    #[test]
    fn hand_placed_one_cell_step_grazes_hunts_and_starves_as_netlogo() {
        // 1×1 torus: every move returns to the only cell, so the tick is deterministic.
        let cfg = tiny(1);
        let sheep = vec![
            Agent {
                cell: 0,
                energy: 0.0,
                heading: 0,
            },
            Agent {
                cell: 0,
                energy: 0.0,
                heading: 0,
            },
        ];
        let wolves = vec![
            Agent {
                cell: 0,
                energy: 0.5,
                heading: 3,
            },
            Agent {
                cell: 0,
                energy: 0.0,
                heading: 0,
            },
        ];
        let mut m = Abm::from_parts(&cfg, sheep, wolves, vec![true], vec![3], SplitMix::new(1));
        let st = m.step(0, 0);
        // Sheep 1 grazes (0 − 1 + 4 = 3), sheep 2 finds brown grass (−1): starves.
        assert_eq!(st.grass_eaten, 1);
        assert_eq!(st.sheep_starved, 1);
        // Wolf 1 eats the surviving sheep (0.5 − 1 + 20), wolf 2 finds none (−1): starves.
        assert_eq!(st.sheep_eaten, 1);
        assert_eq!(st.wolves_starved, 1);
        assert_eq!(m.sheep.len(), 0);
        assert_eq!(m.wolves.len(), 1);
        assert!((m.wolves[0].energy - 19.5).abs() < 1e-12);
        // Eaten at tick 1 (countdown 3 kept): the grass step sees countdown 3 > 0 → 2.
        assert!(!m.green[0]);
        assert_eq!(m.countdown[0], 2);
    }

    #[test]
    fn eaten_grass_regrows_regrowth_plus_one_ticks_later() {
        let cfg = tiny(1);
        let sheep = vec![Agent {
            cell: 0,
            energy: 100.0,
            heading: 5,
        }];
        let mut m = Abm::from_parts(&cfg, sheep, vec![], vec![true], vec![3], SplitMix::new(2));
        m.step(0, 0); // eaten at tick 1
        m.sheep.clear();
        let mut green_at = None;
        for t in 2..10 {
            m.step(0, 0);
            if m.green[0] {
                green_at = Some(t);
                break;
            }
        }
        // Countdown 3 → 2 (tick 1), 1 (tick 2), 0 (tick 3), green at tick 4: the
        // regrowth + 1-th grass step counting the tick of eating.
        assert_eq!(green_at, Some(1 + cfg.regrowth as u64));
        assert_eq!(m.countdown[0], 3);
    }

    #[test]
    fn reproduction_halves_energy_and_places_offspring_next_to_the_parent() {
        let mut cfg = tiny(5);
        cfg.sheep_reproduce = 1.0;
        let sheep = vec![Agent {
            cell: 12,
            energy: 10.0,
            heading: 2,
        }];
        let n = cfg.cells();
        let mut m = Abm::from_parts(
            &cfg,
            sheep,
            vec![],
            vec![false; n],
            vec![9; n],
            SplitMix::new(3),
        );
        let st = m.step(0, 0);
        assert_eq!(st.sheep_born, 1);
        assert_eq!(m.sheep.len(), 2);
        assert_eq!(m.sheep[0].energy, 4.5);
        assert_eq!(m.sheep[1].energy, 4.5);
        let xy = |c: u32| ((c % 5) as i32, (c / 5) as i32);
        let (p, o) = (xy(m.sheep[0].cell), xy(m.sheep[1].cell));
        let d = ((p.0 - o.0).rem_euclid(5).min((o.0 - p.0).rem_euclid(5)))
            .max((p.1 - o.1).rem_euclid(5).min((o.1 - p.1).rem_euclid(5)));
        assert_eq!(d, 1, "{p:?} {o:?}");
        // The parent moved one Moore step from the centre (2, 2).
        assert_eq!((p.0 - 2).abs().max((p.1 - 2).abs()), 1);
    }

    #[test]
    fn headings_turn_45_degrees_at_netlogos_rounded_rate_and_steps_follow_them() {
        assert!((2.0 * TURN - 0.3025).abs() < 1e-12);
        let cfg = tiny(51);
        let lone = vec![Agent {
            cell: 0,
            energy: 1e9,
            heading: 0,
        }];
        let n = cfg.cells();
        let mut m = Abm::from_parts(
            &cfg,
            lone,
            vec![],
            vec![false; n],
            vec![9; n],
            SplitMix::new(5),
        );
        let (mut turns, mut prev) = (0usize, m.sheep[0]);
        let steps = 20_000;
        for _ in 0..steps {
            m.step(0, 0);
            let a = m.sheep[0];
            let dh = (a.heading as i32 - prev.heading as i32).rem_euclid(8);
            assert!(dh == 0 || dh == 1 || dh == 7, "turned by {dh}");
            turns += (dh != 0) as usize;
            assert_eq!(a.cell, Abm::neighbour(51, prev.cell, a.heading));
            prev = a;
        }
        let rate = turns as f64 / steps as f64;
        // Binomial sd √(0.3·0.7/20000) ≈ 0.0032.
        assert!((rate - 2.0 * TURN).abs() < 0.015, "{rate}");
    }

    #[test]
    fn counts_follow_the_birth_and_death_bookkeeping_with_controls() {
        let cfg = WolfSheepConfig {
            side: 21,
            initial_sheep: 60,
            initial_wolves: 20,
            ..Default::default()
        };
        let mut m = Abm::new(&cfg, SplitMix::new(7));
        let mut c = m.counts();
        assert_eq!((c.sheep, c.wolves), (60, 20));
        for t in 0..200 {
            let u = (t % 3, t % 2);
            let st = m.step(u.0, u.1);
            let n = m.counts();
            assert_eq!(
                n.sheep + st.removed_sheep + st.sheep_starved + st.sheep_eaten,
                c.sheep + st.sheep_born
            );
            assert_eq!(
                n.wolves + st.removed_wolves + st.wolves_starved,
                c.wolves + st.wolves_born
            );
            assert_eq!(n.grass + st.grass_eaten, c.grass + st.grass_regrown);
            assert_eq!(st.removed_sheep, u.0.min(c.sheep));
            assert_eq!(st.removed_wolves, u.1.min(c.wolves));
            assert!(m
                .countdown
                .iter()
                .all(|&d| (0..=cfg.regrowth as i32).contains(&d)));
            assert!(m
                .sheep
                .iter()
                .chain(&m.wolves)
                .all(|a| a.energy >= 0.0 && (a.cell as usize) < cfg.cells()));
            c = n;
        }
    }
}
