//! Small tabular gridworlds with sticky actions, built as exact finite-horizon MDPs
//! ([`crate::envs::tabular::Mdp`]) for the effective-horizon experiment.
//!
//! A layout is a character grid: `#` wall, `.` floor, `S` start, `G` goal (reward 1, the
//! episode ends), `g` a distracting near goal (reward [`NEAR_REWARD`], the episode ends), `L`
//! lava (reward 0, the episode ends), `K` a key (picked up by stepping on it), `D` a door
//! (passable only while holding the key). Four actions: up, right, down, left; a move into a
//! wall or a closed door leaves the agent in place. Rewards are paid on the transition into
//! the goal cell, nothing else pays.
//!
//! Sticky actions as in the official code (`sticky_transitions_and_rewards` of
//! cassidylaidlaw/effective-horizon): the state is (cell, key, previous action); at the first
//! step the chosen action is executed; afterwards, with probability p the *previous* executed
//! action is executed instead of the chosen one, and the executed action becomes the next
//! state's previous action.

use super::tabular::{Kernel, Mdp, Outcome, TERMINAL};
use anyhow::{bail, Result};

/// Up, right, down, left.
pub const ACTIONS: usize = 4;
const MOVES: [(i64, i64); ACTIONS] = [(-1, 0), (0, 1), (1, 0), (0, -1)];

/// Reward of the distracting near goal `g` (the far goal `G` pays 1).
pub const NEAR_REWARD: f64 = 0.3;

/// A named layout with its episode length T.
#[derive(Debug)]
pub struct Layout {
    pub name: &'static str,
    pub horizon: usize,
    pub rows: &'static [&'static str],
}

/// The built-in layouts: the CPU set (7×7 grids and smaller, walls included) and larger ones
/// for the paper-scale config.
pub const LAYOUTS: &[Layout] = &[
    Layout {
        name: "empty-5",
        horizon: 20,
        rows: &[
            "#######", "#S....#", "#.....#", "#.....#", "#.....#", "#....G#", "#######",
        ],
    },
    Layout {
        name: "corridor",
        horizon: 20,
        rows: &["###########", "#S.......G#", "###########"],
    },
    Layout {
        name: "empty-7",
        horizon: 30,
        rows: &[
            "#########",
            "#S......#",
            "#.......#",
            "#.......#",
            "#.......#",
            "#.......#",
            "#.......#",
            "#......G#",
            "#########",
        ],
    },
    Layout {
        name: "wall-gap",
        horizon: 25,
        rows: &[
            "#######", "#S.#..#", "#..#..#", "#.....#", "#..#..#", "#..#.G#", "#######",
        ],
    },
    Layout {
        name: "two-rooms",
        horizon: 30,
        rows: &[
            "#########",
            "#S..#...#",
            "#...#...#",
            "#...#...#",
            "#...#...#",
            "#...#...#",
            "#.......#",
            "#...#..G#",
            "#########",
        ],
    },
    Layout {
        name: "key-door",
        horizon: 30,
        rows: &[
            "#######", "#S.#..#", "#..D..#", "#..#..#", "#K.#.G#", "#######",
        ],
    },
    Layout {
        name: "lava-strip",
        horizon: 25,
        rows: &[
            "#######", "#S....#", "#.....#", "#LLL.L#", "#.....#", "#....G#", "#######",
        ],
    },
    Layout {
        name: "cliff",
        horizon: 25,
        rows: &[
            "#########",
            "#.......#",
            "#.......#",
            "#S.....G#",
            "#LLLLLLL#",
            "#########",
        ],
    },
    Layout {
        name: "distractor",
        horizon: 25,
        rows: &[
            "#######", "#S.g..#", "#.....#", "#.....#", "#.....#", "#....G#", "#######",
        ],
    },
    Layout {
        name: "distractor-adjacent",
        horizon: 25,
        rows: &[
            "#######", "#Sg...#", "#.....#", "#.....#", "#.....#", "#....G#", "#######",
        ],
    },
    Layout {
        name: "distractor-far",
        horizon: 25,
        rows: &[
            "#######", "#S...g#", "#.....#", "#.....#", "#.....#", "#....G#", "#######",
        ],
    },
    Layout {
        name: "distractor-lava",
        horizon: 25,
        rows: &[
            "#######", "#Sg...#", "#.....#", "#.LLL.#", "#.....#", "#...LG#", "#######",
        ],
    },
    Layout {
        name: "maze",
        horizon: 30,
        rows: &[
            "#######", "#S#...#", "#.#.#.#", "#.#.#.#", "#...#G#", "#######",
        ],
    },
    Layout {
        name: "four-rooms",
        horizon: 30,
        rows: &[
            "#########",
            "#S..#...#",
            "#.......#",
            "#...#...#",
            "##.###.##",
            "#...#...#",
            "#.......#",
            "#...#..G#",
            "#########",
        ],
    },
    // Larger layouts for the paper-scale config.
    Layout {
        name: "empty-11",
        horizon: 50,
        rows: &[
            "#############",
            "#S..........#",
            "#...........#",
            "#...........#",
            "#...........#",
            "#...........#",
            "#...........#",
            "#...........#",
            "#...........#",
            "#...........#",
            "#...........#",
            "#..........G#",
            "#############",
        ],
    },
    Layout {
        name: "key-door-9",
        horizon: 50,
        rows: &[
            "###########",
            "#S...#....#",
            "#....#....#",
            "#....D....#",
            "#....#....#",
            "#....#....#",
            "#K...#...G#",
            "###########",
        ],
    },
    Layout {
        name: "distractor-9",
        horizon: 40,
        rows: &[
            "###########",
            "#S.g......#",
            "#.........#",
            "#.........#",
            "#...LLLL..#",
            "#.........#",
            "#.........#",
            "#........G#",
            "###########",
        ],
    },
    Layout {
        name: "maze-9",
        horizon: 50,
        rows: &[
            "###########",
            "#S..#.....#",
            "###.#.###.#",
            "#...#...#.#",
            "#.#####.#.#",
            "#.....#.#.#",
            "#####.#.#.#",
            "#.......#G#",
            "###########",
        ],
    },
];

/// The layout called `name`; the error lists the closest name.
pub fn layout(name: &str) -> Result<&'static Layout> {
    if let Some(l) = LAYOUTS.iter().find(|l| l.name == name) {
        return Ok(l);
    }
    let names = LAYOUTS.iter().map(|l| l.name);
    match crate::config::closest(name, names) {
        Some(best) => bail!("unknown gridworld `{name}`: did you mean `{best}`?"),
        None => bail!(
            "unknown gridworld `{name}`; the layouts: {}",
            LAYOUTS
                .iter()
                .map(|l| l.name)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A parsed gridworld: the free cells and what each holds.
pub struct Grid {
    pub width: usize,
    pub height: usize,
    /// Per grid position: the cell's index among the free cells, or None for a wall.
    index: Vec<Option<usize>>,
    /// Per free cell: (row, column) and its character.
    pub cells: Vec<(usize, usize, char)>,
    pub start: usize,
    pub has_key: bool,
}

impl Grid {
    pub fn parse(rows: &[&str]) -> Result<Grid> {
        let height = rows.len();
        let width = rows.first().map_or(0, |r| r.chars().count());
        if height == 0 || width == 0 || rows.iter().any(|r| r.chars().count() != width) {
            bail!("a gridworld layout needs equally long, non-empty rows");
        }
        let mut index = vec![None; width * height];
        let mut cells = vec![];
        let mut start = None;
        let mut has_key = false;
        for (i, row) in rows.iter().enumerate() {
            for (j, c) in row.chars().enumerate() {
                let edge = i == 0 || j == 0 || i + 1 == height || j + 1 == width;
                match c {
                    '#' => continue,
                    _ if edge => bail!("the layout's border must be walls (`#`), found `{c}`"),
                    '.' | 'G' | 'g' | 'L' | 'K' | 'D' => {}
                    'S' if start.is_none() => start = Some(cells.len()),
                    'S' => bail!("a layout has exactly one start `S`"),
                    _ => bail!("unknown layout character `{c}` (use # . S G g L K D)"),
                }
                has_key |= c == 'K';
                index[i * width + j] = Some(cells.len());
                cells.push((i, j, c));
            }
        }
        let Some(start) = start else {
            bail!("a layout needs a start `S`");
        };
        if !cells.iter().any(|c| c.2 == 'G') {
            bail!("a layout needs a goal `G`");
        }
        Ok(Grid {
            width,
            height,
            index,
            cells,
            start,
            has_key,
        })
    }

    /// Key states: 2 where the layout has a key, else 1.
    fn keys(&self) -> usize {
        if self.has_key {
            2
        } else {
            1
        }
    }

    /// Underlying (not sticky) states: free cell × key held.
    pub fn base_states(&self) -> usize {
        self.cells.len() * self.keys()
    }

    /// The deterministic underlying step from base state `b` with executed action `a`:
    /// (next base state or [`TERMINAL`], reward).
    pub fn step(&self, b: usize, a: usize) -> (u32, f64) {
        let (cell, key) = (b % self.cells.len(), b / self.cells.len() == 1);
        let (i, j, here) = self.cells[cell];
        if matches!(here, 'G' | 'g' | 'L') {
            // Never entered alive (entering ends the episode); absorbing for completeness.
            return (TERMINAL, 0.0);
        }
        let (di, dj) = MOVES[a];
        let (ti, tj) = ((i as i64 + di) as usize, (j as i64 + dj) as usize);
        let Some(target) = self.index[ti * self.width + tj] else {
            return (b as u32, 0.0);
        };
        let n = self.cells.len();
        match self.cells[target].2 {
            'G' => (TERMINAL, 1.0),
            'g' => (TERMINAL, NEAR_REWARD),
            'L' => (TERMINAL, 0.0),
            'D' if !key => (b as u32, 0.0),
            'K' => ((target + n) as u32, 0.0),
            _ => ((target + if key { n } else { 0 }) as u32, 0.0),
        }
    }

    /// The sticky-action MDP with horizon T and repeat probability p: state (base, previous
    /// action) at index base·A + previous; the episode starts in (start, action 0) and the
    /// first step is never sticky.
    pub fn sticky_mdp(&self, horizon: usize, p: f64) -> Mdp {
        let a_n = ACTIONS;
        let states = self.base_states() * a_n;
        let first: Kernel = (0..states * a_n)
            .map(|sa| {
                let (s, a) = (sa / a_n, sa % a_n);
                vec![self.outcome(s / a_n, a, 1.0)]
            })
            .collect();
        let later: Kernel = (0..states * a_n)
            .map(|sa| {
                let (s, a) = (sa / a_n, sa % a_n);
                let (b, prev) = (s / a_n, s % a_n);
                if p <= 0.0 || prev == a {
                    vec![self.outcome(b, a, 1.0)]
                } else {
                    vec![self.outcome(b, a, 1.0 - p), self.outcome(b, prev, p)]
                }
            })
            .collect();
        Mdp {
            states,
            actions: a_n,
            horizon,
            start: self.start * a_n,
            kernels: vec![first, later],
        }
    }

    fn outcome(&self, b: usize, executed: usize, prob: f64) -> Outcome {
        let (next, reward) = self.step(b, executed);
        let next = if next == TERMINAL {
            TERMINAL
        } else {
            next * ACTIONS as u32 + executed as u32
        };
        Outcome { prob, next, reward }
    }

    /// Shortest number of moves from the start to `G` ignoring stickiness (breadth-first
    /// over base states), or None if unreachable.
    pub fn shortest_path(&self) -> Option<usize> {
        let mut dist = vec![usize::MAX; self.base_states()];
        dist[self.start] = 0;
        let mut queue = std::collections::VecDeque::from([self.start]);
        while let Some(b) = queue.pop_front() {
            for a in 0..ACTIONS {
                let (next, r) = self.step(b, a);
                if next == TERMINAL {
                    if r >= 1.0 {
                        return Some(dist[b] + 1);
                    }
                    continue;
                }
                if dist[next as usize] == usize::MAX {
                    dist[next as usize] = dist[b] + 1;
                    queue.push_back(next as usize);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layout_parses_and_reaches_its_goal_within_the_horizon() {
        for l in LAYOUTS {
            let g = Grid::parse(l.rows).unwrap_or_else(|e| panic!("{}: {e}", l.name));
            let d = g.shortest_path().unwrap_or_else(|| panic!("{}", l.name));
            assert!(d < l.horizon, "{}: path {d} vs T {}", l.name, l.horizon);
            g.sticky_mdp(l.horizon, 0.25).validate().unwrap();
        }
        assert!(layout("empty-6")
            .unwrap_err()
            .to_string()
            .contains("did you mean `empty-"));
    }

    #[test]
    fn walls_doors_keys_lava_and_goals_move_as_specified() {
        let g = Grid::parse(&["######", "#SKD.#", "#L.gG#", "######"]).unwrap();
        let n = g.cells.len();
        let at = |i: usize, j: usize| g.cells.iter().position(|c| (c.0, c.1) == (i, j)).unwrap();
        let s = g.start;
        assert_eq!(g.step(s, 0), (s as u32, 0.0)); // up: wall
        assert_eq!(g.step(s, 3), (s as u32, 0.0)); // left: wall
        assert_eq!(g.step(s, 2), (TERMINAL, 0.0)); // down: lava
        let k = g.step(s, 1); // right: the key, now held
        assert_eq!(k, ((at(1, 2) + n) as u32, 0.0));
        // Without the key the door is a wall; with it, passable.
        assert_eq!(g.step(at(1, 2), 1), (at(1, 2) as u32, 0.0));
        assert_eq!(g.step(at(1, 2) + n, 1), ((at(1, 3) + n) as u32, 0.0));
        assert_eq!(g.step(at(2, 2), 1), (TERMINAL, NEAR_REWARD));
        assert_eq!(g.step(at(1, 4), 2), (TERMINAL, 1.0));
    }

    #[test]
    fn sticky_actions_repeat_the_previous_action_at_rate_p() {
        // Exact: every kernel row after the first step puts mass p on the previous action.
        let g = Grid::parse(layout("empty-5").unwrap().rows).unwrap();
        let p = 0.25;
        let mdp = g.sticky_mdp(20, p);
        let s = mdp.start;
        assert_eq!(mdp.outcomes(0, s, 1).len(), 1, "no stickiness at t = 0");
        let o = mdp.outcomes(0, s, 1)[0];
        assert_eq!(
            (o.next as usize) % ACTIONS,
            1,
            "previous action kept in the state"
        );
        let mid = o.next as usize; // one step right, previous action = right
        let down = mdp.outcomes(1, mid, 2);
        assert_eq!(down.len(), 2);
        assert!((down[1].prob - p).abs() < 1e-15);
        assert_eq!((down[1].next as usize) % ACTIONS, 1);
        assert_eq!((down[0].next as usize) % ACTIONS, 2);
        // Sampled: the executed action equals the previous one at rate p + (1 − p)/A under
        // uniformly random choices.
        let mut rng = crate::rng::SplitMix::new(7);
        let (mut repeats, mut n) = (0usize, 0usize);
        let mut state = mdp.start;
        for t in 0..200_000usize {
            let tt = t % 20;
            if tt == 0 {
                state = mdp.start;
            }
            let a = rng.below(ACTIONS);
            let out = mdp.sample(tt, state, a, rng.uniform());
            if out.next == TERMINAL {
                state = mdp.start;
                continue;
            }
            if tt > 0 {
                n += 1;
                repeats += usize::from(out.next as usize % ACTIONS == state % ACTIONS);
            }
            state = out.next as usize;
            if t % 20 == 19 {
                state = mdp.start;
            }
        }
        let rate = repeats as f64 / n as f64;
        let want = p + (1.0 - p) / ACTIONS as f64;
        assert!((rate - want).abs() < 0.005, "{rate} vs {want}");
    }
}
