//! KDE bounds on the mutual information of a layer made stochastic, T = h(X) + ε with
//! ε ~ N(0, σ² I) (Kolchinsky & Tracey 2017, as used by Saxe et al. 2018): the pairwise-KL
//! upper bound and the Bhattacharyya lower bound on H(T); H(T|X) is the noise entropy.

use tch::{Kind, Tensor};

/// Upper-bound entropy estimate in nats of a mixture of Gaussians of variance `var` centred on
/// the rows of `h` [N, d]: d/2 − mean_i log( mean_j N(h_i; h_j, var I) ).
fn entropy_kl_nats(h: &Tensor, var: f64) -> f64 {
    let (n, d) = (h.size()[0], h.size()[1]);
    if n == 0 {
        return 0.0;
    }
    let sq = h
        .square()
        .sum_dim_intlist([1i64].as_slice(), true, Kind::Double);
    let hd = h.to_kind(Kind::Double);
    let dists = (&sq + sq.tr() - hd.matmul(&hd.tr()) * 2.0).clamp_min(0.0) / (2.0 * var);
    let norm = (d as f64 / 2.0) * (2.0 * std::f64::consts::PI * var).ln();
    let lprobs = (-dists).logsumexp([1i64].as_slice(), false) - (n as f64).ln() - norm;
    d as f64 / 2.0 - lprobs.mean(Kind::Double).double_value(&[])
}

/// The Bhattacharyya lower bound: the KL estimate at 4× the variance, shifted by d/2·ln(1/4).
fn entropy_bd_nats(h: &Tensor, var: f64) -> f64 {
    let d = h.size()[1] as f64;
    entropy_kl_nats(h, 4.0 * var) + 0.25f64.ln() * d / 2.0
}

/// I(X;T), I(T;Y) in bits for each seed of `t` [S, N, d].
pub fn information(
    t: &Tensor,
    y: &Tensor,
    n_classes: i64,
    var: f64,
    upper: bool,
) -> (Tensor, Tensor) {
    let (s, n, d) = (t.size()[0], t.size()[1] as f64, t.size()[2] as f64);
    let entropy = |h: &Tensor| {
        if upper {
            entropy_kl_nats(h, var)
        } else {
            entropy_bd_nats(h, var)
        }
    };
    let noise = d / 2.0 * ((2.0 * std::f64::consts::PI * var).ln() + 1.0);
    let classes: Vec<Tensor> = (0..n_classes)
        .map(|c| y.eq(c).nonzero().squeeze_dim(1))
        .collect();
    let (mut ixt, mut ity) = (vec![], vec![]);
    for i in 0..s {
        let h = t.get(i);
        let h_t = entropy(&h);
        let h_t_y: f64 = classes
            .iter()
            .map(|rows| {
                let n_c = rows.size()[0] as f64;
                if n_c == 0.0 {
                    0.0
                } else {
                    n_c / n * entropy(&h.index_select(0, rows))
                }
            })
            .sum();
        ixt.push((h_t - noise) / std::f64::consts::LN_2);
        ity.push((h_t - h_t_y) / std::f64::consts::LN_2);
    }
    (
        Tensor::from_slice(&ixt).to_device(t.device()),
        Tensor::from_slice(&ity).to_device(t.device()),
    )
}
