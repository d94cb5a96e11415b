//! The standard 2-D toy distributions of the normalising-flow and flow-matching literature
//! (FFJORD's `toy_data.py`, Grathwohl et al. 2019, which builds on scikit-learn's
//! `make_moons` / `make_swiss_roll`), rescaled to unit variance.
//!
//! Each set is first drawn in its usual *reference units* (the numbers in the docs of
//! [`Toy`]), then centred on its exact population mean and divided by one isotropic factor,
//! its exact population standard deviation averaged over the two coordinates
//! (`sqrt((Var x + Var y) / 2)`), so that `E|x|² = 2`: roughly unit std per coordinate without
//! changing the shape. The constants are derived in the comments of `Toy::reference_moments`.
//!
//! Samples are i.i.d.: sample `i` uses only `NoiseStream::new(seed, i, TrainNoise)` with draws
//! `DRAW_BASE` (uniforms) and `DRAW_BASE + 1` (normals), so `toy(k, n, s)` is the first `n`
//! rows of `toy(k, m, s)` for any `m ≥ n`. Where the reference code places points on an evenly
//! spaced grid (scikit-learn's moons, FFJORD's rings) we draw the position uniformly instead,
//! which has the same distribution in the limit.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

use microdiff_runtime::noise::{Domain, NoiseStream};

use super::{DRAW_BASE, Dataset};

/// Draw number for the uniforms of one sample.
const UNIFORM_DRAW: u32 = DRAW_BASE;
/// Draw number for the normals of one sample.
const NORMAL_DRAW: u32 = DRAW_BASE + 1;

/// A built-in 2-D toy distribution; serialised by its [`name`](Toy::name). Reference units
/// (before centring and scaling):
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Toy {
    /// `moons`: scikit-learn's `make_moons(noise=0.1)`. With probability ½ the upper moon
    /// `(cos t, sin t)`, else the lower `(1 − cos t, ½ − sin t)`, `t ~ U(0, π)`, plus
    /// `N(0, 0.1²)` per coordinate. Labels: 0 upper, 1 lower.
    #[serde(rename = "moons")]
    TwoMoons,
    /// `8gaussians`: FFJORD's eight Gaussians: a centre chosen uniformly from the eight
    /// points at radius 4 and angles `kπ/4`, plus `N(0, 0.5²)` per coordinate. Labels: `k`.
    #[serde(rename = "8gaussians")]
    EightGaussians,
    /// `swissroll`: scikit-learn's `make_swiss_roll(noise=1.0)` seen along its axis, as in
    /// FFJORD: `(t cos t, t sin t)` with `t ~ U(1.5π, 4.5π)`, plus `N(0, 1)` per coordinate.
    /// No labels.
    #[serde(rename = "swissroll")]
    SwissRoll,
    /// `checkerboard`: FFJORD's checkerboard: uniform on the 8 dark squares of a 4×4 board
    /// covering `[−4, 4]²` (squares of side 2; the square with lower-left corner `(−4, −4)`
    /// is dark). Labels: square index `2·column + (0 lower, 1 upper)`, 0..8.
    #[serde(rename = "checkerboard")]
    Checkerboard,
    /// `rings`: FFJORD's four concentric rings: radius chosen uniformly from
    /// `3·{1, 0.75, 0.5, 0.25}`, angle `U(0, 2π)`, plus `N(0, 0.08²)` per coordinate.
    /// Labels: ring index, 0 outermost.
    #[serde(rename = "rings")]
    Rings,
}

impl Toy {
    /// Every toy set, in the order of help texts.
    pub const ALL: [Toy; 5] = [
        Toy::TwoMoons,
        Toy::EightGaussians,
        Toy::SwissRoll,
        Toy::Checkerboard,
        Toy::Rings,
    ];

    /// The name [`FromStr`] accepts and [`Display`](fmt::Display) prints.
    pub const fn name(self) -> &'static str {
        match self {
            Toy::TwoMoons => "moons",
            Toy::EightGaussians => "8gaussians",
            Toy::SwissRoll => "swissroll",
            Toy::Checkerboard => "checkerboard",
            Toy::Rings => "rings",
        }
    }

    /// The names, comma-separated, for help texts: `moons, 8gaussians, swissroll, …`.
    pub fn names() -> String {
        Self::ALL.map(Toy::name).join(", ")
    }

    /// Number of component labels [`toy_labelled`] gives (0: unlabelled).
    pub const fn classes(self) -> usize {
        match self {
            Toy::TwoMoons => 2,
            Toy::EightGaussians => 8,
            Toy::SwissRoll => 0,
            Toy::Checkerboard => 8,
            Toy::Rings => 4,
        }
    }

    /// The component [`toy_labelled`] most likely drew the point `(x, y)` (data units: centred
    /// and scaled) from, where that is a closed form: `8gaussians` — the nearest centre, which
    /// for equal-weight isotropic components on one circle is the nearest angle `kπ/4`; `rings`
    /// — the nearest radius. `None` for the other sets and for a non-finite point.
    pub fn component(self, x: f32, y: f32) -> Option<u16> {
        let (x, y) = (f64::from(x), f64::from(y));
        if !(x.is_finite() && y.is_finite()) {
            return None;
        }
        match self {
            Toy::EightGaussians => {
                let k = (y.atan2(x) / (PI / 4.0)).round().rem_euclid(8.0);
                Some(k as u16 % 8)
            }
            Toy::Rings => {
                let (_, _, std) = self.reference_moments();
                let r = x.hypot(y) * std / 3.0;
                // Radii 1, 0.75, 0.5, 0.25 (× 3) are rings 0..4.
                Some(((1.0 - r) / 0.25).round().clamp(0.0, 3.0) as u16)
            }
            _ => None,
        }
    }

    /// `(mean x, mean y, isotropic std)` of the population in reference units, exact.
    fn reference_moments(self) -> (f64, f64, f64) {
        match self {
            // x: upper moon cos t has E = 0, E[x²] = ½; lower 1 − cos t has E = 1,
            // E[x²] = 3/2. So E x = ½, Var x = 1 − ¼ = ¾. y: E sin t = 2/π, E sin² t = ½, so
            // upper E y = 2/π, E y² = ½; lower E y = ½ − 2/π, E y² = ¾ − 2/π. E y = ¼,
            // Var y = (5/4 − 2/π)/2 − 1/16 = 9/16 − 1/π. Noise adds 0.01 to each.
            Toy::TwoMoons => {
                let vx = 0.75 + 0.01;
                let vy = 9.0 / 16.0 - 1.0 / PI + 0.01;
                (0.5, 0.25, ((vx + vy) / 2.0).sqrt())
            }
            // Centres at radius 4 on 8 symmetric angles: mean 0, E[c_x²] = E[c_y²] = 16/2.
            Toy::EightGaussians => (0.0, 0.0, (8.0f64 + 0.25).sqrt()),
            // Means: ∫ t cos t = [t sin t + cos t] = 6π over an interval of 3π → 2;
            // ∫ t sin t = [sin t − t cos t] = 2 → 2/(3π). Second moments: ∫ t² cos² t and
            // ∫ t² sin² t = ½∫ t² ± ½∫ t² cos 2t, with ∫_a^b t² dt = 29.25π³ (a = 1.5π,
            // b = 4.5π) and ∫ t² cos 2t = [t²/2 sin 2t + t/2 cos 2t − ¼ sin 2t] = −3π/2
            // (sin 2t = 0 at both ends, cos 2t = −1 at both), so
            // E[x²] = (14.625π³ − 0.75π)/(3π) = 39π²/8 − ¼ and E[z²] = 39π²/8 + ¼.
            // Noise adds 1 to each variance.
            Toy::SwissRoll => {
                let m2 = 39.0 * PI * PI / 8.0;
                let vx = m2 - 0.25 - 4.0 + 1.0;
                let vy = m2 + 0.25 - (2.0 / (3.0 * PI)).powi(2) + 1.0;
                (2.0, 2.0 / (3.0 * PI), ((vx + vy) / 2.0).sqrt())
            }
            // Each coordinate's marginal is uniform on [−4, 4]: variance 8²/12.
            Toy::Checkerboard => (0.0, 0.0, (64.0f64 / 12.0).sqrt()),
            // E r² = 9·(1 + 0.5625 + 0.25 + 0.0625)/4 = 9·1.875/4; half per coordinate.
            Toy::Rings => (0.0, 0.0, (9.0 * 1.875 / 8.0 + 0.08f64 * 0.08).sqrt()),
        }
    }

    /// Sample `i`'s point in reference units and its component label.
    fn reference_point(self, ns: &NoiseStream) -> ([f64; 2], u16) {
        let u = |k: u32| f64::from(ns.uniform(UNIFORM_DRAW, k));
        let z = |k: u32| f64::from(ns.normal(NORMAL_DRAW, k));
        // `uniform` is in (0, 1), so `floor(m·u) < m` always; the `min` is belt and braces.
        let pick = |k: u32, m: u16| ((u(k) * f64::from(m)).floor() as u16).min(m - 1);
        match self {
            Toy::TwoMoons => {
                let t = PI * u(1);
                let (p, c) = if u(0) < 0.5 {
                    ([t.cos(), t.sin()], 0)
                } else {
                    ([1.0 - t.cos(), 0.5 - t.sin()], 1)
                };
                ([p[0] + 0.1 * z(0), p[1] + 0.1 * z(1)], c)
            }
            Toy::EightGaussians => {
                let k = pick(0, 8);
                let a = f64::from(k) * PI / 4.0;
                ([4.0 * a.cos() + 0.5 * z(0), 4.0 * a.sin() + 0.5 * z(1)], k)
            }
            Toy::SwissRoll => {
                let t = 1.5 * PI * (1.0 + 2.0 * u(0));
                ([t * t.cos() + z(0), t * t.sin() + z(1)], 0)
            }
            Toy::Checkerboard => {
                // FFJORD: x1 ~ U(−2, 2); x2 ~ U(0, 1) − 2·{0, 1} + (floor(x1) mod 2); × 2.
                let x1 = 4.0 * u(0) - 2.0;
                let upper = u(2) < 0.5;
                let x2 = u(1) - if upper { 0.0 } else { 2.0 } + x1.floor().rem_euclid(2.0);
                let column = (x1.floor() + 2.0).clamp(0.0, 3.0) as u16;
                ([2.0 * x1, 2.0 * x2], 2 * column + u16::from(upper))
            }
            Toy::Rings => {
                let ring = pick(0, 4);
                let r = 3.0 * (1.0 - 0.25 * f64::from(ring));
                let a = 2.0 * PI * u(1);
                ([r * a.cos() + 0.08 * z(0), r * a.sin() + 0.08 * z(1)], ring)
            }
        }
    }
}

impl fmt::Display for Toy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of [`Toy::from_str`]: the name given and the names accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown toy dataset `{0}` (expected one of: {names})", names = Toy::names())]
pub struct UnknownToy(pub String);

impl FromStr for Toy {
    type Err = UnknownToy;

    /// One of [`Toy::names`], case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Toy::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownToy(s.to_string()))
    }
}

/// `n` samples of `kind`, unlabelled, centred and scaled to unit variance (see the module
/// doc). Panics if `n > 2³²`.
pub fn toy(kind: Toy, n: usize, seed: u64) -> Dataset {
    let mut ds = toy_labelled(kind, n, seed);
    ds.labels = None;
    ds.classes = 0;
    ds
}

/// [`toy`] with the mixture component of each sample as its label (the labels listed on each
/// [`Toy`] variant; `SwissRoll` has none). The points are the same as [`toy`]'s.
pub fn toy_labelled(kind: Toy, n: usize, seed: u64) -> Dataset {
    assert!(n as u64 <= 1 << 32, "toy: at most 2^32 samples");
    let (mx, my, std) = kind.reference_moments();
    let mut x = Vec::with_capacity(2 * n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let ns = NoiseStream::new(seed, i as u32, Domain::TrainNoise);
        let ([px, py], c) = kind.reference_point(&ns);
        x.push(((px - mx) / std) as f32);
        x.push(((py - my) / std) as f32);
        labels.push(c);
    }
    let classes = kind.classes();
    Dataset {
        name: kind.name().to_string(),
        x,
        dim: 2,
        shape: vec![2],
        labels: (classes > 0).then_some(labels),
        classes,
    }
}
