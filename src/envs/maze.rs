//! The hard maze of Lehman & Stanley's novelty-search experiments as the deep-neuroevolution
//! code ships it (`gym_tensorflow/maze/hard_maze.txt`, `maze.h`, `tf_maze.cpp`, read at
//! uber-research/deep-neuroevolution@d99f92d): 13 wall segments, start (36, 184) heading 0°,
//! goal (31, 20), 400 steps.
//!
//! The agent is a disc of radius 8 with 6 rangefinders (−90°, −45°, 0°, 45°, 90°, −180°
//! relative to its heading, range 100; input = distance/100, the nearest wall crossing the
//! ray strictly inside both segments) and 4 pie-slice radars that fire (1, else 0) when the
//! goal's bearing relative to the heading lies in [315°, 405°), [45°, 135°), [135°, 225°) or
//! [225°, 315°). Inputs: bias 1, the 6 ranges, the 4 radars (11). Outputs a₁, a₂ become
//! o = clip(a + 0.5, 0, 1) (as `tf_maze.cpp` does); the target angular velocity (o₁ − 0.5)·6
//! and speed (o₂ − 0.5)·6 are approached by at most ±0.2 per step and clipped to ±3. A step
//! moves by speed·(cos h, sin h) with the heading h from before the turn, then turns by the
//! angular velocity (degrees); a move that would bring the disc within 8 of a wall is
//! skipped (the file's first field is 0: collisions do not stop the agent for good).
//! The reward is −(distance to the goal) after the 400th step; the behaviour is the final
//! (x, y). Geometry is in f32 with π = 3.1415926 as in the original.
//!
//! Note: the walls are the 13 lines after the point-of-interest line of the file (which
//! repeats the goal); the first wall is (41, 5)–(3, 8).

/// π as the original code writes it (3.1415926, not f32's π).
#[allow(clippy::approx_constant)]
const PI: f32 = 3.141_592_6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub const fn new(x: f32, y: f32) -> Point {
        Point { x, y }
    }
    pub fn dist(self, o: Point) -> f32 {
        let (dx, dy) = (o.x - self.x, o.y - self.y);
        (dx * dx + dy * dy).sqrt()
    }
    /// The direction of the vector (0, 0) → self in degrees, in [−90°, 270°).
    fn angle(self) -> f32 {
        if self.x == 0.0 {
            return if self.y > 0.0 { 90.0 } else { 270.0 };
        }
        let a = (self.y / self.x).atan() / PI * 180.0;
        if self.x > 0.0 {
            a
        } else {
            a + 180.0
        }
    }
    /// Rotated by `deg` degrees about `c`.
    fn rotate(self, deg: f32, c: Point) -> Point {
        let (sin, cos) = (deg / 180.0 * PI).sin_cos();
        let (ox, oy) = (self.x - c.x, self.y - c.y);
        Point::new(cos * ox - sin * oy + c.x, sin * ox + cos * oy + c.y)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wall {
    pub a: Point,
    pub b: Point,
}

impl Wall {
    const fn new(ax: f32, ay: f32, bx: f32, by: f32) -> Wall {
        Wall {
            a: Point::new(ax, ay),
            b: Point::new(bx, by),
        }
    }

    /// The crossing of two segments strictly inside both, if any.
    fn intersection(&self, c: Point, d: Point) -> Option<Point> {
        let (a, b) = (self.a, self.b);
        let r_top = (a.y - c.y) * (d.x - c.x) - (a.x - c.x) * (d.y - c.y);
        let s_top = (a.y - c.y) * (b.x - a.x) - (a.x - c.x) * (b.y - a.y);
        let bot = (b.x - a.x) * (d.y - c.y) - (b.y - a.y) * (d.x - c.x);
        if bot == 0.0 {
            return None;
        }
        let (r, s) = (r_top / bot, s_top / bot);
        (r > 0.0 && r < 1.0 && s > 0.0 && s < 1.0)
            .then(|| Point::new(a.x + r * (b.x - a.x), a.y + r * (b.y - a.y)))
    }

    /// Distance from a point to the segment.
    pub fn distance(&self, n: Point) -> f32 {
        let (a, b) = (self.a, self.b);
        let top = (n.x - a.x) * (b.x - a.x) + (n.y - a.y) * (b.y - a.y);
        let len = a.dist(b);
        let bot = len * len;
        if bot == 0.0 {
            return 0.0;
        }
        let u = top / bot;
        if !(0.0..=1.0).contains(&u) {
            return a.dist(n).min(b.dist(n));
        }
        Point::new(a.x + u * (b.x - a.x), a.y + u * (b.y - a.y)).dist(n)
    }
}

pub const WALLS: [Wall; 13] = [
    Wall::new(41.0, 5.0, 3.0, 8.0),
    Wall::new(3.0, 8.0, 4.0, 49.0),
    Wall::new(4.0, 49.0, 57.0, 53.0),
    Wall::new(4.0, 49.0, 7.0, 202.0),
    Wall::new(7.0, 202.0, 195.0, 198.0),
    Wall::new(195.0, 198.0, 186.0, 8.0),
    Wall::new(186.0, 8.0, 39.0, 5.0),
    Wall::new(56.0, 54.0, 56.0, 157.0),
    Wall::new(57.0, 106.0, 158.0, 162.0),
    Wall::new(77.0, 201.0, 108.0, 164.0),
    Wall::new(6.0, 80.0, 33.0, 121.0),
    Wall::new(192.0, 146.0, 87.0, 91.0),
    Wall::new(56.0, 55.0, 133.0, 30.0),
];
pub const START: Point = Point::new(36.0, 184.0);
pub const GOAL: Point = Point::new(31.0, 20.0);
pub const STEPS: usize = 400;
pub const RADIUS: f32 = 8.0;
pub const RANGE: f32 = 100.0;
pub const RANGEFINDERS: [f32; 6] = [-90.0, -45.0, 0.0, 45.0, 90.0, -180.0];
pub const RADARS: [(f32, f32); 4] = [
    (315.0, 405.0),
    (45.0, 135.0),
    (135.0, 225.0),
    (225.0, 315.0),
];
pub const OBS: usize = 11;
pub const ACTIONS: usize = 2;
/// The walls' bounding box (x0, y0, x1, y1), for coverage cells.
pub const BOUNDS: (f32, f32, f32, f32) = (3.0, 5.0, 195.0, 202.0);

/// One navigator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agent {
    pub pos: Point,
    /// Degrees in [0, 360].
    pub heading: f32,
    pub speed: f32,
    pub ang_vel: f32,
}

impl Default for Agent {
    fn default() -> Self {
        Agent {
            pos: START,
            heading: 0.0,
            speed: 0.0,
            ang_vel: 0.0,
        }
    }
}

pub fn collides(p: Point) -> bool {
    WALLS.iter().any(|w| w.distance(p) < RADIUS)
}

impl Agent {
    /// The six rangefinder distances (≤ RANGE).
    pub fn ranges(&self) -> [f32; 6] {
        let mut out = [RANGE; 6];
        for (o, &deg) in out.iter_mut().zip(&RANGEFINDERS) {
            let r = deg / 180.0 * PI;
            let end = Point::new(self.pos.x + r.cos() * RANGE, self.pos.y + r.sin() * RANGE)
                .rotate(self.heading, self.pos);
            for w in &WALLS {
                if let Some(p) = w.intersection(self.pos, end) {
                    *o = o.min(p.dist(self.pos));
                }
            }
        }
        out
    }

    /// The four goal radars (1 or 0).
    pub fn radars(&self) -> [f32; 4] {
        let t = GOAL.rotate(-self.heading, self.pos);
        let a = Point::new(t.x - self.pos.x, t.y - self.pos.y).angle();
        let mut out = [0.0; 4];
        for (o, &(lo, hi)) in out.iter_mut().zip(&RADARS) {
            if (a >= lo && a < hi) || (a + 360.0 >= lo && a + 360.0 < hi) {
                *o = 1.0;
            }
        }
        out
    }

    /// The network inputs: bias, ranges/100, radars.
    pub fn observe(&self, out: &mut [f32]) {
        out[0] = 1.0;
        for (o, r) in out[1..7].iter_mut().zip(self.ranges()) {
            *o = r / RANGE;
        }
        out[7..11].copy_from_slice(&self.radars());
    }

    /// Applies the network outputs (before the +0.5 shift) and moves one step.
    pub fn step(&mut self, a1: f32, a2: f32) {
        let o1 = (a1 + 0.5).clamp(0.0, 1.0);
        let o2 = (a2 + 0.5).clamp(0.0, 1.0);
        let d_ang = ((o1 - 0.5) * 6.0 - self.ang_vel).clamp(-0.2, 0.2);
        let d_speed = ((o2 - 0.5) * 6.0 - self.speed).clamp(-0.2, 0.2);
        self.ang_vel = (self.ang_vel + d_ang).clamp(-3.0, 3.0);
        self.speed = (self.speed + d_speed).clamp(-3.0, 3.0);
        self.advance();
    }

    /// The motion part of a step, with the current speed and angular velocity.
    pub fn advance(&mut self) {
        let h = self.heading / 180.0 * PI;
        let (vx, vy) = (h.cos() * self.speed, h.sin() * self.speed);
        self.heading += self.ang_vel;
        if self.heading > 360.0 {
            self.heading -= 360.0;
        }
        if self.heading < 0.0 {
            self.heading += 360.0;
        }
        let next = Point::new(self.pos.x + vx, self.pos.y + vy);
        if !collides(next) {
            self.pos = next;
        }
    }

    /// −(distance to the goal).
    pub fn reward(&self) -> f32 {
        -self.pos.dist(GOAL)
    }
}

/// The 20 × 20 coverage cell of a position (clamped into the bounding box).
pub fn cell(p: Point, cells: usize) -> usize {
    let (x0, y0, x1, y1) = BOUNDS;
    let ix = (((p.x - x0) / (x1 - x0)) * cells as f32).floor() as i64;
    let iy = (((p.y - y0) / (y1 - y0)) * cells as f32).floor() as i64;
    let c = cells as i64 - 1;
    (iy.clamp(0, c) * cells as i64 + ix.clamp(0, c)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() < tol
    }

    #[test]
    fn rangefinders_at_the_start_hit_the_walls_computed_by_hand() {
        let a = Agent::default();
        let r = a.ranges();
        // −90° (towards −y): nothing within 100 along x = 36 from y = 184 down to 84.
        assert_eq!(r[0], RANGE);
        // 0° (towards +x): wall (77,201)–(108,164) at y = 184: x = 77 + 31·17/37.
        assert!(close(r[2], 77.0 + 31.0 * 17.0 / 37.0 - 36.0, 1e-3), "{r:?}");
        // 90° (towards +y): wall (7,202)–(195,198) at x = 36: y = 202 − 4·29/188.
        assert!(
            close(r[4], 202.0 - 4.0 * 29.0 / 188.0 - 184.0, 1e-3),
            "{r:?}"
        );
        // −180° (towards −x): wall (4,49)–(7,202) at y = 184: x = 4 + 3·135/153.
        assert!(
            close(r[5], 36.0 - (4.0 + 3.0 * 135.0 / 153.0), 1e-3),
            "{r:?}"
        );
        // Turned by 90°, the forward sensor looks along +y.
        let turned = Agent {
            heading: 90.0,
            ..Agent::default()
        };
        assert!(close(turned.ranges()[2], r[4], 1e-3));
    }

    #[test]
    fn radar_fires_the_slice_holding_the_goal_bearing() {
        // Goal (31, 20) from (36, 184): (−5, −164), bearing atan(32.8) + 180° ≈ 268°.
        let a = Agent::default();
        assert_eq!(a.radars(), [0.0, 0.0, 0.0, 1.0]);
        // Facing 270° the goal is straight ahead (bearing ≈ −1.7° → the [315°, 405°) slice).
        let b = Agent {
            heading: 270.0,
            ..a
        };
        assert_eq!(b.radars(), [1.0, 0.0, 0.0, 0.0]);
        // Facing 90° it is behind.
        let c = Agent { heading: 90.0, ..a };
        assert_eq!(c.radars(), [0.0, 0.0, 1.0, 0.0]);
        let mut obs = [0.0; OBS];
        a.observe(&mut obs);
        assert_eq!(obs[0], 1.0);
        assert_eq!(obs[1], 1.0);
        assert_eq!(&obs[7..], &[0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn moves_that_touch_a_wall_are_skipped_and_others_are_not() {
        // Below the bottom wall y ≈ 200 at x = 100 (distance ≈ 10.0): a move of 3 towards it
        // would end 7 < 8 away.
        let mut a = Agent {
            pos: Point::new(100.0, 190.0),
            heading: 90.0,
            speed: 3.0,
            ang_vel: 0.0,
        };
        assert!(close(WALLS[4].distance(a.pos), 10.02, 0.01));
        a.advance();
        assert_eq!(a.pos, Point::new(100.0, 190.0));
        // Turning away (heading 270) it moves by 3.
        let mut b = Agent {
            heading: 270.0,
            ..a
        };
        b.advance();
        assert!(
            close(b.pos.y, 187.0, 1e-4) && close(b.pos.x, 100.0, 1e-4),
            "{:?}",
            b.pos
        );
        // The heading advances after the velocity is taken, and wraps into [0, 360].
        let mut c = Agent {
            pos: Point::new(100.0, 120.0),
            heading: 359.0,
            speed: 1.0,
            ang_vel: 3.0,
        };
        c.advance();
        assert!(close(c.heading, 2.0, 1e-4));
        assert!(close(c.pos.x, 100.0 + (359.0f32 / 180.0 * PI).cos(), 1e-5));
    }

    #[test]
    fn outputs_change_speed_and_turn_rate_by_at_most_point_two() {
        let mut a = Agent::default();
        a.step(10.0, 10.0); // o = 1: targets 3, 3
        assert!(close(a.ang_vel, 0.2, 1e-6) && close(a.speed, 0.2, 1e-6));
        a.step(-0.5, 0.0); // o1 = 0 → target −3; o2 = 0.5 → target 0
        assert!(close(a.ang_vel, 0.0, 1e-6) && close(a.speed, 0.0, 1e-6));
        // Doing nothing for 400 steps keeps the agent at the start: reward −dist(start, goal).
        let mut b = Agent::default();
        for _ in 0..STEPS {
            b.step(0.0, 0.0);
        }
        assert!(close(b.reward(), -(25.0f32 + 164.0 * 164.0).sqrt(), 1e-3));
        assert_eq!(cell(START, 20), 18 * 20 + 3);
    }
}
