//! Outputs of `prune-eval`: `prune_curves.csv`, `prune_summary.csv`, `prune.json`, and
//! (with the `report` feature) plots `plots/prune_<scope>.png/.svg`.

use std::fmt::Write as _;
use std::path::Path;

#[cfg(feature = "report")]
use super::plots::{save, PruneCurve, PrunePlot};
use crate::error::{Error, Result};
use crate::io::data::CLASSES;
#[cfg(feature = "report")]
use crate::prune::curves::Order;
use crate::prune::experiment::PruneResult;

/// File stem of a scope's plot.
pub fn plot_name(scope: &str) -> String {
    format!("prune_{}", scope.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "_"))
}

/// Writes every output of a pruning experiment into `dir` (the plots only with the
/// `report` feature).
pub fn write_prune(r: &PruneResult, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))
    };
    let mut s = String::from("scope,criterion,seed,order,ablation,fraction,removed,top1");
    for c in CLASSES {
        write!(s, ",top1_{c}").unwrap();
    }
    s.push('\n');
    for p in &r.points {
        let seed = p.seed.map(|x| x.to_string()).unwrap_or_default();
        write!(
            s,
            "{},{},{seed},{},{},{},{},{:.2}",
            p.scope,
            p.criterion,
            p.order.name(),
            p.ablation,
            p.fraction,
            p.removed,
            p.top1
        )
        .unwrap();
        for a in &p.per_class {
            write!(s, ",{a:.1}").unwrap();
        }
        s.push('\n');
    }
    write("prune_curves.csv", s)?;
    let mut s = String::from(
        "scope,criterion,order,ablation,auc,auc_ci_low,auc_ci_high,random_seeds,random_mean,random_mean_ci_low,\
         random_mean_ci_high,random_sd,z,random_percentile,effect,effect_ci_low,effect_ci_high,p_value,q_value,verdict\n",
    );
    for v in &r.verdicts {
        writeln!(
            s,
            "{},{},{},{},{:.3},{:.3},{:.3},{},{:.3},{:.3},{:.3},{:.3},{:.2},{:.1},{:.3},{:.3},{:.3},{:.4},{:.4},{}",
            v.scope,
            v.criterion,
            v.order.name(),
            v.ablation,
            v.auc,
            v.auc_ci_low,
            v.auc_ci_high,
            v.random_seeds,
            v.random_mean,
            v.random_mean_ci_low,
            v.random_mean_ci_high,
            v.random_sd,
            v.z,
            v.random_percentile,
            v.effect,
            v.effect_ci_low,
            v.effect_ci_high,
            v.p_value,
            v.q_value,
            v.verdict
        )
        .unwrap();
    }
    write("prune_summary.csv", s)?;
    write("prune.json", serde_json::to_string_pretty(r).expect("serializable"))?;
    #[cfg(feature = "report")]
    write_plots(r, dir)?;
    Ok(())
}

/// Draws one accuracy-while-pruning figure per scope into `dir/plots/`.
#[cfg(feature = "report")]
fn write_plots(r: &PruneResult, dir: &Path) -> Result<()> {
    let plots = dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
    let mut scopes: Vec<String> = Vec::new();
    for p in &r.points {
        if !scopes.contains(&p.scope) {
            scopes.push(p.scope.clone());
        }
    }
    for scope in scopes {
        let mut panels = Vec::new();
        for &ablation in &r.config.ablations {
            for order in [Order::LowestFirst, Order::HighestFirst] {
                // The random curves (drawn once) are the yardstick of both orders.
                let mut curves: Vec<PruneCurve> = Vec::new();
                for p in r
                    .points
                    .iter()
                    .filter(|p| p.scope == scope && p.ablation == ablation && (p.order == order || p.seed.is_some()))
                {
                    let name = match p.seed {
                        Some(s) => format!("{}#{s}", p.criterion),
                        None => p.criterion.to_string(),
                    };
                    match curves.iter_mut().find(|c| c.0 == name) {
                        Some(c) => c.2.push((p.fraction, p.top1)),
                        None => curves.push((name, p.seed.is_some(), vec![(p.fraction, p.top1)])),
                    }
                }
                panels.push((format!("{}, {ablation}-ablation", order.name()), curves));
            }
        }
        let title = format!("{scope}: accuracy on {} test images while pruning", r.config.images.len());
        let rows = r.config.ablations.len() as u32;
        save(&plots, &plot_name(&scope), (1200, 450 * rows), &PrunePlot { title, panels })?;
    }
    Ok(())
}

/// The verdict table printed at the end of `prune-eval`.
pub fn terminal_summary(r: &PruneResult) -> String {
    let mut s = format!(
        "{:<16} {:<12} {:<14} {:<5} {:>7} {:>13} {:>7} {:>17} {:>7} {:>7}  verdict (BH q <= 0.05)\n",
        "scope", "criterion", "order", "abl.", "AUC", "random", "effect", "95 % CI", "p", "q"
    );
    for v in &r.verdicts {
        let random = format!("{:.2}±{:.2}", v.random_mean, v.random_sd);
        let ci = format!("[{:.2}, {:.2}]", v.effect_ci_low, v.effect_ci_high);
        writeln!(
            s,
            "{:<16} {:<12} {:<14} {:<5} {:>7.2} {:>13} {:>7.2} {:>17} {:>7.4} {:>7.4}  {}",
            v.scope,
            v.criterion,
            v.order.name(),
            v.ablation,
            v.auc,
            random,
            v.effect,
            ci,
            v.p_value,
            v.q_value,
            v.verdict
        )
        .unwrap();
    }
    s
}
