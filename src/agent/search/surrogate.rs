//! A local quadratic model of the metric over the knobs (in doublings from the best), fitted
//! by weighted least squares to every measurement on record, and the search for its best
//! point inside a trust region. Numbers in, numbers out: no text, no files.
//!
//! Why a quadratic and not TPE's density ratio: near a good setting a training metric is a
//! smooth bowl in the log of each knob, often tilted (the best learning rate moves with the
//! width). A quadratic fitted to all runs averages their noise, sees the tilt, and points at
//! the bowl's bottom; TPE only learns where the good samples were.

/// One measured point: `z` in doublings from the best, `y` oriented so lower is better, the
/// number of runs its value is the mean of.
#[derive(Debug, Clone)]
pub struct Point {
    pub z: Vec<f64>,
    pub y: f64,
    pub runs: f64,
}

/// `y ≈ c + g·z + ½ zᵀHz`.
#[derive(Debug, Clone)]
pub struct Quadratic {
    pub c: f64,
    pub g: Vec<f64>,
    /// Row-major d×d, symmetric.
    pub h: Vec<f64>,
    pub d: usize,
}

impl Quadratic {
    pub fn predict(&self, z: &[f64]) -> f64 {
        let d = self.d;
        let mut v = self.c;
        for i in 0..d {
            v += self.g[i] * z[i];
            for j in 0..d {
                v += 0.5 * z[i] * self.h[i * d + j] * z[j];
            }
        }
        v
    }

    /// The unconstrained minimum `-H⁻¹g` when H is positive definite.
    pub fn newton(&self) -> Option<Vec<f64>> {
        let d = self.d;
        let mut a = self.h.clone();
        let mut b: Vec<f64> = self.g.iter().map(|g| -g).collect();
        cholesky_solve(&mut a, &mut b, d).then_some(b)
    }
}

/// Parameters of the model: constant, linear, squares, and (when `full`) cross terms.
fn features(z: &[f64], full: bool, out: &mut Vec<f64>) {
    out.clear();
    out.push(1.0);
    out.extend_from_slice(z);
    out.extend(z.iter().map(|x| 0.5 * x * x));
    if full {
        for i in 0..z.len() {
            for j in i + 1..z.len() {
                out.push(z[i] * z[j]);
            }
        }
    }
}

/// How many parameters a model over `d` knobs has.
pub fn params(d: usize, full: bool) -> usize {
    1 + 2 * d + if full { d * (d - 1) / 2 } else { 0 }
}

/// Fits the model; `None` when the points cannot determine it. Each point weighs its runs
/// times a kernel that favours points near the best (`bandwidth` in doublings). Curvatures
/// are shrunk gently towards zero (ridge), which keeps a barely determined fit tame.
pub fn fit(points: &[Point], d: usize, full: bool, bandwidth: f64) -> Option<Quadratic> {
    let p = params(d, full);
    if points.len() < p {
        return None;
    }
    let mut ata = vec![0.0; p * p];
    let mut aty = vec![0.0; p];
    let mut f = Vec::with_capacity(p);
    let mut total = 0.0;
    for pt in points {
        let r2: f64 = pt.z.iter().map(|x| x * x).sum();
        let w = pt.runs * (-r2 / (2.0 * bandwidth * bandwidth)).exp();
        total += w;
        features(&pt.z, full, &mut f);
        for i in 0..p {
            aty[i] += w * f[i] * pt.y;
            for j in 0..p {
                ata[i * p + j] += w * f[i] * f[j];
            }
        }
    }
    let ridge = 1e-6 * total.max(1e-12);
    for i in 1..p {
        ata[i * p + i] += ridge;
    }
    if !solve(&mut ata, &mut aty, p) {
        return None;
    }
    let beta = aty;
    let mut h = vec![0.0; d * d];
    for i in 0..d {
        h[i * d + i] = beta[1 + d + i];
    }
    if full {
        let mut k = 1 + 2 * d;
        for i in 0..d {
            for j in i + 1..d {
                h[i * d + j] = beta[k];
                h[j * d + i] = beta[k];
                k += 1;
            }
        }
    }
    let q = Quadratic {
        c: beta[0],
        g: beta[1..=d].to_vec(),
        h,
        d,
    };
    q.c.is_finite().then_some(q)
}

/// Gaussian elimination with partial pivoting; `b` becomes the solution. False when
/// singular.
fn solve(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap_or(col);
        let scale = a[col * n + col].abs().max(a[pivot * n + col].abs());
        if scale < 1e-300 || !scale.is_finite() {
            return false;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(col * n + k, pivot * n + k);
            }
            b.swap(col, pivot);
        }
        let diag = a[col * n + col];
        for row in col + 1..n {
            let factor = a[row * n + col] / diag;
            if factor == 0.0 {
                continue;
            }
            for k in col..n {
                a[row * n + k] -= factor * a[col * n + k];
            }
            b[row] -= factor * b[col];
        }
    }
    for col in (0..n).rev() {
        let mut s = b[col];
        for k in col + 1..n {
            s -= a[col * n + k] * b[k];
        }
        b[col] = s / a[col * n + col];
        if !b[col].is_finite() {
            return false;
        }
    }
    true
}

/// Solves `a x = b` for a positive definite `a`; false when it is not.
fn cholesky_solve(a: &mut [f64], b: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut s = a[j * n + j];
        for k in 0..j {
            s -= a[j * n + k] * a[j * n + k];
        }
        if s <= 1e-12 {
            return false;
        }
        let l = s.sqrt();
        a[j * n + j] = l;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / l;
        }
    }
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= a[k * n + i] * b[k];
        }
        b[i] = s / a[i * n + i];
    }
    true
}

/// A small deterministic generator (splitmix64): the search's seed and the iteration give
/// the same candidates again on a resume.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_tilted_bowl_exactly() {
        // y = 1 + (z0 - 1)² + 0.5 (z1 + 0.5)² + 0.6 (z0 - 1)(z1 + 0.5)
        let truth = |z: &[f64]| {
            let (a, b) = (z[0] - 1.0, z[1] + 0.5);
            1.0 + a * a + 0.5 * b * b + 0.6 * a * b
        };
        let mut pts = Vec::new();
        for i in -2..=2 {
            for j in -2..=2 {
                let z = vec![f64::from(i) * 0.7, f64::from(j) * 0.9];
                pts.push(Point {
                    y: truth(&z),
                    z,
                    runs: 1.0,
                });
            }
        }
        let q = fit(&pts, 2, true, 10.0).unwrap();
        let m = q.newton().unwrap();
        assert!(
            (m[0] - 1.0).abs() < 1e-4 && (m[1] + 0.5).abs() < 1e-4,
            "{m:?}"
        );
        let at = q.predict(&m);
        assert!((at - 1.0).abs() < 1e-4, "{at}");
        // Too few points for the full model.
        assert!(fit(&pts[..5], 2, true, 10.0).is_none());
    }
}
