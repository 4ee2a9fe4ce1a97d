//! Coverage of the image-bootstrap intervals against the number of images.
//!
//! For each number of images n and each population (exponential, mean 1: skewness 2;
//! log-normal with σ = 1, mean e^0.5: skewness 6.2; the skewed per-image values
//! `--bootstrap` resamples), draws `TRIALS` samples of n values, builds the 95 %
//! percentile and BCa intervals of the mean from `B` resamples, and counts how often
//! each covers the population's mean. Prints a Markdown table (docs/statistics.md).
//!
//!     cargo run --release -p flickertag --example bootstrap_coverage
//!
//! With `--oracle-input` it prints instead one sample and its bootstrap means as JSON,
//! the input of `scripts/bca-oracle.py` (scipy's BCa on the same bootstrap means).

use flickertag::analysis::bootstrap::{bca_ci, percentile_ci, resamples, studentized_ci};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};

const TRIALS: usize = 2000;
const B: usize = 1000;
const NS: [usize; 8] = [5, 10, 15, 20, 30, 40, 60, 100];

fn main() {
    if std::env::args().any(|a| a == "--oracle-input") {
        let v = oracle_sample();
        let idx = resamples(v.len(), 2000, 7);
        let n = v.len() as f64;
        let means: Vec<f64> = idx.iter().map(|r| r.iter().map(|&i| v[i]).sum::<f64>() / n).collect();
        // Each resample's standard error of the mean (sample SD / √n).
        let ses: Vec<f64> = idx
            .iter()
            .zip(&means)
            .map(|(r, m)| (r.iter().map(|&i| (v[i] - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / n.sqrt())
            .collect();
        let (_, blo, bhi) = bca_ci(&v, &idx);
        let (_, slo, shi) = studentized_ci(&v, &idx);
        let out =
            serde_json::json!({"data": v, "means": means, "ses": ses, "bca": [blo, bhi], "studentized": [slo, shi]});
        println!("{out}");
        return;
    }
    println!("| images | exponential: percentile | BCa | studentized | log-normal: percentile | BCa | studentized |");
    println!("|---|---|---|---|---|---|---|");
    for n in NS {
        let mut row = format!("| {n} |");
        for (d, truth) in [(0, 1.0), (1, 0.5f64.exp())] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + n as u64 + 100_000 * d);
            let (mut pc, mut bc, mut sc) = (0usize, 0usize, 0usize);
            for t in 0..TRIALS {
                let v: Vec<f64> = (0..n)
                    .map(|_| match d {
                        0 => Exp::new(1.0).unwrap().sample(&mut rng),
                        _ => LogNormal::new(0.0, 1.0).unwrap().sample(&mut rng),
                    })
                    .collect();
                let idx = resamples(n, B, rng.random::<u64>() ^ t as u64);
                let (_, lo, hi) = percentile_ci(&v, &idx);
                pc += (lo <= truth && truth <= hi) as usize;
                let (_, lo, hi) = bca_ci(&v, &idx);
                bc += (lo <= truth && truth <= hi) as usize;
                let (_, lo, hi) = studentized_ci(&v, &idx);
                sc += (lo <= truth && truth <= hi) as usize;
            }
            let f = |c: usize| c as f64 / TRIALS as f64;
            row.push_str(&format!(" {:.3} | {:.3} | {:.3} |", f(pc), f(bc), f(sc)));
        }
        println!("{row}");
    }
    println!("\n({TRIALS} samples per cell, {B} resamples each; binomial SD about 0.005 at 0.95)");
}

/// Twelve skewed values (fixed, for the scipy parity check).
pub fn oracle_sample() -> Vec<f64> {
    vec![0.12, 0.31, 0.05, 1.7, 0.44, 0.09, 2.9, 0.21, 0.65, 0.15, 0.38, 5.2]
}
