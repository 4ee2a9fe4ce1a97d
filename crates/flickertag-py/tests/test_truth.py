"""flickertag.importance_truth: the tables against pandas' own Spearman correlation, and
the Taylor criterion against the gradient of the loss with respect to a channel mask
(torch's autograd through another route than the hooks flickertag uses)."""

import os

import numpy as np
import pandas as pd
import pytest

import flickertag

DATA = os.environ.get("FLICKERTAG_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="FLICKERTAG_DATA is not set")


@needs_data
def test_importance_truth_correlations_are_pandas_spearman_of_its_filter_table():
    t = flickertag.importance_truth("resnet20", layers=["layer1.0.conv1", "#8"], n_images=200,
                                    statistics_images=100, bootstrap=50, taylor=False, progress=False)
    f = t.filters
    assert list(f["layer"].unique()) == ["layer1.0.conv1", "layer2.0.conv1"]
    assert len(f) == 16 + 32
    assert t.summary["config"]["images"] and max(t.summary["config"]["images"]) < 9900
    assert not set(t.summary["config"]["images"]) & set(t.summary["config"]["statistics_images"])
    for (scope, crit, truth), rho in t.correlations.set_index(["scope", "criterion", "truth"])["rho"].items():
        if crit == "reliability":
            continue
        sub = f if scope == "all" else f[f["layer"] == scope]
        sub = sub[sub[crit].notna()]
        # Spearman as pandas computes it without scipy: Pearson of the average ranks.
        want = sub[crit].rank().corr(sub[truth].rank())
        assert rho == pytest.approx(want, abs=1e-9), (scope, crit, truth)
    assert "taylor" not in f.columns
    assert t.rho().loc["ft_bca", "all"] == pytest.approx(
        t.correlations.query("scope == 'all' and criterion == 'ft_bca' and truth == 'delta_loss'")["rho"].item())


@needs_data
def test_crossval_ablation_table_matches_its_json_and_measures_on_half_b():
    t = flickertag.importance_truth("resnet20", layers=["#4"], n_images=20, statistics_images=100,
                                    analysis_images=list(range(12)), bootstrap=0, crossval_splits=3,
                                    crossval_random=3, taylor=False, progress=False)
    cv = t.crossval
    assert list(cv["split"]) == [0, 1, 2] and set(cv["layer"]) == {"layer1.1.conv1"}
    for row, split in zip(cv.itertuples(), t.summary["crossval"]["splits"]):
        # B is half of the analysis images, and none of them is an evaluation image.
        assert len(split["images_b"]) == 6 and set(split["images_b"]) <= set(range(12))
        assert not set(split["images_b"]) & set(t.summary["config"]["images"])
        layer = split["layers"][0]
        assert row.set_size == len(layer["set"])
        got = [] if pd.isna(row.set) else [int(x) for x in str(row.set).split()]
        assert got == layer["set"]
        if 0 < row.set_size < row.channels:
            # (1 + #random at least as damaging) / (3 + 1): a multiple of 1/4 in [1/4, 1].
            k = row.p_value * 4
            assert abs(k - round(k)) < 1e-9 and 1 <= round(k) <= 4, row.p_value
    with pytest.raises(flickertag.FlickertagError, match="analysis_images: at least 4"):
        flickertag.importance_truth("resnet20", analysis_images=[0, 1, 2], crossval_splits=2, n_images=20,
                                    taylor=False, progress=False)
    plain = flickertag.importance_truth("resnet20", layers=["#4"], n_images=20, statistics_images=100,
                                        bootstrap=0, taylor=False, progress=False)
    assert plain.crossval is None and plain.summary["crossval"] is None


@needs_data
def test_importance_truth_refuses_a_taylor_without_torch_or_a_bad_option():
    with pytest.raises(flickertag.FlickertagError, match="n_images|n-images"):
        flickertag.importance_truth("resnet20", n_images=1, taylor=False, progress=False)
    with pytest.raises(flickertag.FlickertagError, match="extra"):
        flickertag.importance_truth("resnet20", extra=[], taylor=False, progress=False)


@needs_data
def test_taylor_equals_the_gradient_with_respect_to_a_channel_mask():
    torch = pytest.importorskip("torch", reason="torch is not installed here (make test installs it)")
    from flickertag import cifar_resnet as cr
    from flickertag._truth import _cifar_test, taylor_scores

    net = cr.cifar_resnet("resnet20", DATA)
    idx = list(range(9900, 9940))
    got = taylor_scores(net, ["layer1.0.conv1", "layer3.2.conv2"], DATA, idx, cr.MEAN, cr.STD, batch=16)
    # Oracle: multiply the BatchNorm output by a mask of ones [N, C, 1, 1] and take
    # dL/dmask: per image and channel, the sum over positions of a * dL/da.
    x, y = _cifar_test(DATA, idx)
    x = (torch.from_numpy(x) - torch.tensor(cr.MEAN).view(1, 3, 1, 1)) / torch.tensor(cr.STD).view(1, 3, 1, 1)
    for name, bn in [("layer1.0.conv1", net.layer1[0].bn1), ("layer3.2.conv2", net.layer3[2].bn2)]:
        mask = torch.ones(len(idx), bn.num_features, 1, 1, requires_grad=True)
        h = bn.register_forward_hook(lambda m, i, o: o * mask)
        try:
            loss = torch.nn.functional.cross_entropy(net(x), torch.from_numpy(y), reduction="sum")
            (g,) = torch.autograd.grad(loss, mask)
        finally:
            h.remove()
        positions = 32 * 32 if name.startswith("layer1") else 8 * 8
        want = (g[:, :, 0, 0].abs() / positions).mean(0).double().numpy()
        np.testing.assert_allclose(got[name], want, rtol=1e-4, atol=1e-9)
    t = flickertag.importance_truth("resnet20", layers=["layer1.0.conv1"], n_images=100, statistics_images=100,
                                    bootstrap=20, progress=False)
    assert "taylor" in t.filters.columns and "taylor" in set(t.correlations["criterion"])
    np.testing.assert_allclose(
        t.filters["taylor"],
        taylor_scores(net, ["layer1.0.conv1"], DATA, list(range(9900, 10000)), cr.MEAN, cr.STD)["layer1.0.conv1"],
        rtol=1e-9)
