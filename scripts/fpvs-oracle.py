#!/usr/bin/env python3
"""Independent numpy transcriptions of the FPVS rule (Rossion lab practice, as the FPVS
Toolbox computes it: z and baseline correction from the 20 bins around a bin, +-10, the
adjacent bin skipped, the smallest and largest dropped; harmonics taken while z > 1.64 until
two consecutive are not; Holm over the family) and of MNE's `snr_spectrum` (mne.time_frequency,
1.x: a convolution with a kernel of ones on the neighbours, zeros on the skipped bins, NaN at
the edges). Prints the values the Rust tests in crates/flickertag/src/analysis/harmonic_sum.rs
and src/signal/snr.rs compare with. Needs numpy and scipy (the project's .venv).
Usage: .venv/bin/python scripts/fpvs-oracle.py"""
import numpy as np
from scipy.stats import norm

N = 121
k = np.arange(N, dtype=float)
# The synthetic spectrum of the tests (the same formula is written in Rust): a smooth
# noise-like floor and peaks at 12, 24, 36 (weaker) and 60.
amp = 1.0 + 0.3 * np.sin(1.7 * k) ** 2 + 0.1 * np.cos(0.37 * k)
amp[12] += 5.0
amp[24] += 2.0
amp[36] += 0.4
amp[60] += 3.0


def fpvs_noise(a, h):
    idx = [h + j for j in list(range(-10, -1)) + list(range(2, 11)) if 0 < h + j < len(a)]
    v = np.sort(a[idx])[1:-1]
    return v.mean(), v.std(ddof=1)


def z(a, h):
    m, s = fpvs_noise(a, h)
    return (a[h] - m) / s


def select(zs):
    out, miss = [], 0
    for i, v in enumerate(zs):
        if v > 1.64:
            out.append(i)
            miss = 0
        else:
            miss += 1
            if miss == 2:
                break
    return out


def holm(p):
    p = np.asarray(p)
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = min(max(running, (m - rank) * p[i]), 1.0)
        adj[i] = running
    return adj


def mne_snr_spectrum(psd, n, skip):
    kernel = np.concatenate((np.ones(n), np.zeros(2 * skip + 1), np.ones(n)))
    kernel /= kernel.sum()
    mean_noise = np.convolve(psd, kernel, mode="valid")
    edge = n + skip
    mean_noise = np.pad(mean_noise, (edge, edge), constant_values=np.nan)
    return psd / mean_noise


harm = [12 * i for i in range(1, 10)]
zs = [z(amp, h) for h in harm]
chosen = select(zs)
print("z at 12k:", [repr(v) for v in zs])
print("chosen:", chosen)
bca = sum(amp[harm[i]] - fpvs_noise(amp, harm[i])[0] for i in chosen)
p = [1 - norm.cdf(z(amp, harm[i])) for i in chosen]
print("bca:", repr(bca))
print("p:", [repr(v) for v in p])
print("holm:", [repr(v) for v in holm(p)])
snr = mne_snr_spectrum(amp ** 2, 3, 1)
print("mne snr at 12, 30, 60, 116:", [repr(snr[i]) for i in (12, 30, 60, 116)], "nan at 3:", np.isnan(snr[3]))
