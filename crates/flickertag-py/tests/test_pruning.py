"""flickertag.pruning against Torch-Pruning itself: the dependency graph it builds, its
MAC counter and its pruner; expected values from the analysis' own table and numpy.
Needs torch and torch-pruning (`make test` installs both)."""

import os

import numpy as np
import pytest

import flickertag

torch = pytest.importorskip("torch", reason="torch is not installed here (make test installs it)")
tp = pytest.importorskip("torch_pruning", reason="torch-pruning is not installed here (pip install 'flickertag[pruning]')")
nn = torch.nn
MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class Net(nn.Module):
    """A small residual network: the stem's channels are coupled with both blocks'
    second convs through the additions."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = Block(16)
        self.layer2 = Block(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def net_and_analysis():
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # BatchNorm statistics away from identity
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    a = flickertag.analyze(net, input_shape=(3, 32, 32), mean=MEAN, std=STD, taps="conv,linear", stats=False,
                           progress=False)
    return net, a


def group_of(dg, module):
    return dg.get_pruning_group(module, tp.prune_conv_out_channels, idxs=list(range(module.out_channels)))


def test_tagging_importance_ranks_equal_the_analysis_filter_table(net_and_analysis):
    from flickertag.pruning import TaggingImportance

    net, a = net_and_analysis
    imp = TaggingImportance.from_analysis(a, net)
    dg = tp.DependencyGraph().build_dependency(net, example_inputs=torch.randn(1, 3, 32, 32))
    # layer1.conv1 is coupled with nothing that has output channels: its importance is
    # its own column of the filter table.
    got = imp(group_of(dg, net.layer1.conv1)).numpy()
    want = a.filters[a.filters["tap"] == "layer1.conv1"].sort_values("channel")["mean_score"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert list(np.argsort(got)) == list(np.argsort(want))


def test_coupled_groups_are_reduced_as_torch_pruning_reduces_them(net_and_analysis):
    from flickertag.pruning import TaggingImportance

    net, a = net_and_analysis
    f = a.filters
    col = lambda tap: f[f["tap"] == tap].sort_values("channel")["pass_fraction"].to_numpy()
    dg = tp.DependencyGraph().build_dependency(net, example_inputs=torch.randn(1, 3, 32, 32))
    g = group_of(dg, net.conv1)
    # Torch-Pruning's own graph couples the stem with both blocks' second convs.
    outs = {dep.layer for dep, _ in g if dep.pruning_fn == tp.prune_conv_out_channels}
    assert outs == {net.conv1, net.layer1.conv2, net.layer2.conv2}
    stack = np.stack([col("conv1"), col("layer1.conv2"), col("layer2.conv2")])
    for reduction, want in [("mean", stack.mean(0)), ("sum", stack.sum(0)), ("max", stack.max(0))]:
        imp = TaggingImportance.from_analysis(a, net, criterion="pass_fraction", group_reduction=reduction)
        np.testing.assert_allclose(imp(g).numpy(), want, rtol=1e-6, err_msg=reduction)


def test_scores_that_do_not_fit_the_model_are_refused_naming_them(net_and_analysis):
    from flickertag.pruning import TaggingImportance, tagging_scores

    net, a = net_and_analysis
    with pytest.raises(flickertag.FlickertagError, match="layer9.conv1"):
        TaggingImportance({"layer9.conv1": np.zeros(16)}, net)
    with pytest.raises(flickertag.FlickertagError, match="conv1 has 16 output channels, the scores 3"):
        TaggingImportance({"conv1": np.zeros(3)}, net)
    with pytest.raises(flickertag.FlickertagError, match="invalid criterion"):
        tagging_scores(a, "tap")


def test_a_pruner_reaches_the_target_macs_and_the_pruned_model_runs_in_flickertag(net_and_analysis):
    from flickertag.pruning import TaggingImportance, count_macs, prune_to_macs

    net, a = net_and_analysis
    x = torch.randn(1, 3, 32, 32)
    imp = TaggingImportance.from_analysis(a, net)
    pruned, info = prune_to_macs(net, imp, x, 2.0, ignored_layers=[net.fc])
    before, _ = count_macs(net, x)
    after, _ = count_macs(pruned, x)
    assert abs(before / after - 2.0) <= 0.02 * 2.0, info
    assert info["macs_after"] == after and info["macs_before"] == before
    # The original is untouched; the pruned network runs and gives 10 logits.
    assert net.conv1.out_channels == 16
    assert pruned(x).shape == (1, 10)
    b = flickertag.analyze(pruned, input_shape=(3, 32, 32), mean=MEAN, std=STD, taps="conv", stats=False,
                           progress=False)
    counts = b.filters.groupby("tap", sort=False).size().to_dict()
    assert counts["layer1.conv1"] == pruned.layer1.conv1.out_channels < 16
    assert counts["conv1"] == pruned.conv1.out_channels


def data_dir():
    d = os.environ.get("FLICKERTAG_DATA")
    if not d:
        pytest.skip("FLICKERTAG_DATA is not set (point it at ../shared/data to run this test)")
    return d


def test_the_prunable_cifar_resnet_is_the_checkpoints_network():
    """The selection-conv shortcut against option A written here with F.pad (the
    checkpoint's own code), on the same weights."""
    import torch.nn.functional as F

    from flickertag.cifar_resnet import cifar_resnet

    net = cifar_resnet("resnet20", data_dir())

    def reference(x):
        relu = torch.relu
        out = relu(net.bn1(net.conv1(x)))
        for stage in (net.layer1, net.layer2, net.layer3):
            for b in stage:
                y = b.bn2(b.conv2(relu(b.bn1(b.conv1(out)))))
                if isinstance(b.shortcut, nn.Identity):
                    s = out
                else:
                    p = b.conv2.out_channels // 4
                    s = F.pad(out[:, :, ::2, ::2], (0, 0, 0, 0, p, p), "constant", 0)
                out = relu(y + s)
        return net.linear(out.mean((2, 3)))

    x = torch.randn(8, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), reference(x).numpy(), atol=1e-5, rtol=1e-5)
    # And against flickertag's own ResNet-20 from the checkpoint: the same accuracy.
    from flickertag.cifar_resnet import MEAN, STD

    ours = flickertag.evaluate(net, data=data_dir(), limit=500, input_shape=(3, 32, 32), mean=MEAN, std=STD)
    theirs = flickertag.evaluate("resnet20", data=data_dir(), limit=500)
    assert ours["correct"] == theirs["correct"]


def test_prune_writes_a_smaller_network_with_its_figures(tmp_path):
    from flickertag.pruning import prune

    out = tmp_path / "pruned"
    pruned, info = prune("resnet20", criterion="ft_authors", macs_ratio=2.0, data=data_dir(), eval_limit=300,
                         progress=False, out=str(out))
    assert abs(info["macs_ratio"] - 2.0) <= 0.02
    assert info["params_after"] < info["params_before"]
    assert 0 <= info["top1_after"] <= info["top1_before"] <= 100 and info["eval_images"] == 300
    assert sorted(os.listdir(out)) == ["prune.json", "pruned.onnx", "pruned_model.pt", "pruned_state_dict.pt",
                                       "report.html"]
    report = (out / "report.html").read_text()
    kept = info["channels"]["layer1.0.conv1"]
    assert f"<td>layer1.0.conv1</td><td>{kept} of 16</td>" in report and f"{info['top1_after']:.2f} %" in report
    # The written ONNX runs in flickertag with the pruned channel counts.
    from flickertag.cifar_resnet import MEAN, STD

    a = flickertag.analyze(str(out / "pruned.onnx"), taps="conv", stats=False, progress=False, mean=MEAN, std=STD)
    got = a.filters.groupby("tap", sort=False).size()
    assert got["layer1.0.conv1"] == info["channels"]["layer1.0.conv1"]
    sd = torch.load(out / "pruned_state_dict.pt", weights_only=True)
    assert sd["layer1.0.conv1.weight"].shape[0] == info["channels"]["layer1.0.conv1"]
    with pytest.raises(flickertag.FlickertagError, match="overwrite=True"):
        prune("resnet20", criterion="random", data=data_dir(), eval_limit=10, progress=False, out=str(out))
    with pytest.raises(flickertag.FlickertagError, match="invalid criterion: one of ft_authors"):
        prune("resnet20", criterion="l2", data=data_dir(), progress=False)


def _conv_linear_macs(net):
    """Multiply-accumulates of every conv and linear layer on one 32 x 32 image, from
    the output shapes torch itself reports (forward hooks): the oracle for the MAC
    ratio, independent of Torch-Pruning's counter (which also counts BatchNorms)."""
    total = []

    def hook(m, _inp, out):
        if isinstance(m, nn.Conv2d):
            total.append(out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1])
        else:
            total.append(m.in_features * m.out_features)

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        net.eval()(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    return sum(total)


def test_resnet56_pruned_to_the_published_mac_target_in_reduced_form(tmp_path):
    # Torch-Pruning's ResNet-56 benchmark setting (2.11x fewer MACs) by tagging scores,
    # evaluated on 200 test images: the full table runs from scripts/readme-prune-resnet56.py.
    from flickertag.cifar_resnet import cifar_resnet
    from flickertag.pruning import prune

    pruned, info = prune("resnet56", criterion="ft_authors", macs_ratio=2.11, data=data_dir(), eval_limit=200,
                         progress=False, out=str(tmp_path / "r56"))
    full = _conv_linear_macs(cifar_resnet("resnet56", data_dir()))
    # By hand: the 3x3 stem, 18 convs of 16 channels at 32 x 32, a strided 16 -> 32 and 17
    # convs of 32 at 16 x 16, a strided 32 -> 64 and 17 of 64 at 8 x 8, the two option-A
    # shortcuts as fixed 1 x 1 selection convs (cifar_resnet's module doc), the 64 x 10 fc.
    assert full == 9 * (32 * 32 * (16 * 3 + 18 * 16 * 16) + 16 * 16 * (32 * 16 + 17 * 32 * 32)
                        + 8 * 8 * (64 * 32 + 17 * 64 * 64)) + 16 * 16 * 32 * 16 + 8 * 8 * 64 * 32 + 640
    assert full / _conv_linear_macs(pruned) == pytest.approx(2.11, rel=0.03)
    assert abs(info["macs_ratio"] - 2.11) <= 0.0211
    assert 0 <= info["top1_after"] <= info["top1_before"] <= 100 and info["eval_images"] == 200
    assert os.path.exists(tmp_path / "r56" / "pruned.onnx")


def test_flickertag_prune_on_the_command_line_writes_the_same_figures(tmp_path, capsys):
    import json

    from flickertag._cli import prune_main

    out = tmp_path / "cli"
    rc = prune_main(["--model", "resnet20", "--criterion", "random", "--seed", "3", "--macs-ratio", "1.5",
                     "--data", data_dir(), "--eval-limit", "100", "--out", str(out), "--json", "--quiet"])
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert info == json.loads((out / "prune.json").read_text())
    assert info["criterion"] == "random" and abs(info["macs_ratio"] - 1.5) <= 0.015
    rc = prune_main(["--model", "resnet20", "--data", data_dir(), "--out", str(out), "--quiet"])
    assert rc == 1 and "--force" in capsys.readouterr().err


def test_tie_break_orders_equal_scores_by_another_column_and_keeps_every_other_order(net_and_analysis):
    from flickertag.pruning import tagging_scores

    _, a = net_and_analysis
    plain = np.concatenate(list(tagging_scores(a, "pass_fraction").values()))
    tied = np.concatenate(list(tagging_scores(a, "pass_fraction", tie_break="mean_score").values()))
    other = np.concatenate(list(tagging_scores(a, "mean_score").values()))
    assert len(np.unique(tied)) == len(tied), "ties remain"
    for i in range(len(plain)):
        for j in range(len(plain)):
            if plain[i] < plain[j]:
                assert tied[i] < tied[j]
            elif plain[i] == plain[j] and other[i] < other[j]:
                assert tied[i] < tied[j]
