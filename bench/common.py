"""Shared pieces of the Python reference implementations, written the way users write
this analysis by hand: CIFAR-10 from the binary batch, the paper's stimulus, FFT and
the `authors` SNR in numpy."""
import numpy as np

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FPS, N_FRAMES, F_LEFT, F_RIGHT = 120.0, 240, 6.0, 7.5


def load_cifar_test(path, indices):
    raw = np.fromfile(path, dtype=np.uint8).reshape(10000, 3073)
    return raw[indices, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0


def frames(image):
    """[N_FRAMES, 3, 32, 32]: normalized image, left half x s_L(i), right half x s_R(i)."""
    x = (image - MEAN[:, None, None]) / STD[:, None, None]
    t = np.arange(N_FRAMES) / FPS
    s_l = (0.75 + 0.25 * np.sin(2 * np.pi * F_LEFT * t)).astype(np.float32)
    s_r = (0.75 + 0.25 * np.sin(2 * np.pi * F_RIGHT * t)).astype(np.float32)
    out = np.repeat(x[None], N_FRAMES, axis=0)
    out[:, :, :, :16] *= s_l[:, None, None, None]
    out[:, :, :, 16:] *= s_r[:, None, None, None]
    return out


def authors_snr_scores(amp):
    """amp: [filters, N/2+1] amplitudes |rfft|/N. Returns the per-filter mean SNR (dB,
    floored at 0) over bins 1..N/2, noise = mean of 3 bins each side after skipping 1,
    truncated at the edges, signal and noise floored at 1e-8."""
    s = amp[:, 1:]
    nb = s.shape[1]
    snr = np.zeros_like(s)
    for k in range(nb):
        idx = [j for j in list(range(k - 4, k - 1)) + list(range(k + 2, k + 5)) if 0 <= j < nb]
        noise = np.maximum(s[:, idx].mean(axis=1), 1e-8)
        sig = np.maximum(s[:, k], 1e-8)
        snr[:, k] = np.maximum(10 * np.log10(sig / noise), 0.0)
    return snr.mean(axis=1)
