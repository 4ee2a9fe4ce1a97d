#!/usr/bin/env python3
"""Independent end points for the interval tests of crates/flickertag/src/analysis/bootstrap.rs.

Reads the JSON that `cargo run --release -p flickertag --example bootstrap_coverage --
--oracle-input` prints (twelve values, the means of 2000 of flickertag's seeded
resamples, and the resamples' indices' statistics are not needed beyond the means and
standard errors it also prints) and computes on the same bootstrap distribution:
- BCa: scipy's own `scipy.stats._resampling._bca_interval` (scipy 1.17), then numpy's
  linear percentiles, as `scipy.stats.bootstrap(method="BCa")` does;
- studentized: Efron & Tibshirani (1993) eq. 12.22, written here in numpy.
Usage:
  cargo run --release -p flickertag --example bootstrap_coverage -- --oracle-input > /tmp/o.json
  .venv/bin/python scripts/bootstrap-oracle.py /tmp/o.json
"""
import json
import sys

import numpy as np
from scipy.stats._resampling import _bca_interval

d = json.load(open(sys.argv[1]))
x = np.array(d["data"])
means = np.array(d["means"])
ses = np.array(d["ses"])
# The sample's mean summed left to right, as flickertag sums: whether a resampled mean
# ties with it (counted half in z0) must not hang on numpy's pairwise summation.
def seq_mean(v, axis=-1):
    return np.apply_along_axis(lambda r: sum(r.tolist()) / len(r), axis, v)


a1, a2, _ = _bca_interval((x,), seq_mean, axis=-1, alpha=0.025, theta_hat_b=means[None, :], batch=None, xp=np)
bca = [float(np.percentile(means, 100 * float(np.squeeze(a1)))), float(np.percentile(means, 100 * float(np.squeeze(a2))))]
n = len(x)
se = x.std(ddof=1) / np.sqrt(n)
t = (means - sum(x.tolist()) / n) / ses
m = sum(x.tolist()) / n
stud = [float(m - np.percentile(t, 97.5) * se), float(m - np.percentile(t, 2.5) * se)]
print(json.dumps({"bca": bca, "studentized": stud, "flickertag_bca": d["bca"], "flickertag_studentized": d["studentized"]}))
