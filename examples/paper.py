"""The paper's experiment from Python: pretrained ResNet-32, the first CIFAR-10 test image
of each class, left half at 6 Hz and right half at 7.5 Hz, 240 frames at 120 fps.

    python examples/paper.py [OUT.png]

Needs only `pip install flickertag matplotlib` (or `make python`): the weights and the ten
images are embedded in flickertag.
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import flickertag  # noqa: E402

# The paper's settings are the defaults; the paper analyses the convolutions (the
# default also records the Linear classifier).
a = flickertag.analyze("resnet32", taps="conv", threads=2)
print(a.layers[["tap", "conv_ordinal", "n_filters", "n_important"]].to_string(index=False))

tap = "layer1.0.conv1"  # the paper's conv #2; pick its top-scoring filter
row = a.filters[a.filters.tap == tap].sort_values("mean_score").iloc[-1]
fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
a.spectrum(tap, int(row.channel)).iloc[1:].plot(ax=left, color="k", lw=1, logy=True)  # DC left out
for f, c in [(6, "tab:blue"), (7.5, "tab:red"), (1.5, "tab:green"), (13.5, "tab:green")]:
    left.axvline(f, color=c, lw=0.8, ls="--")
left.set(xlabel="frequency (Hz)", ylabel="mean amplitude", title=f"{tap} filter {int(row.channel)}")
right.bar(a.layers.conv_ordinal.astype(int), a.layers.n_important, color="tab:red")
right.set(xlabel="conv #", ylabel="important filters", title=f"mean score > {a.summary['threshold']} dB")
fig.tight_layout()
out = sys.argv[1] if len(sys.argv) > 1 else "paper.png"
fig.savefig(out, dpi=100)
print(f"figure: {out}")
