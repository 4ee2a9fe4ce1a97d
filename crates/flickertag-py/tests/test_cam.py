"""flickertag.cam: the canvases against numpy's own pasting, and every channel weight
against torch computing the method's definition on the same canvas (forward hooks,
masked inputs, a zeroed channel), with Grad-CAM against the exact gradient of the
network's head."""

import os

import numpy as np
import pytest

import flickertag

DATA = os.environ.get("FLICKERTAG_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="FLICKERTAG_DATA is not set")

_RECORD = 1 + 3 * 32 * 32


def _test_images():
    raw = np.fromfile(os.path.join(DATA, "cifar10", "test_batch.bin"), dtype=np.uint8).reshape(10000, _RECORD)
    return raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, raw[:, 0]


@needs_data
def test_canvases_are_the_object_pasted_on_a_mosaic_of_other_classes():
    from flickertag._cam import canvases

    layer, cases, pixels = canvases("resnet20", n_cases=12, seed=5)
    assert layer == "layer3.2.relu2"
    assert pixels.shape == (12, 3, 64, 64) and pixels.dtype == np.float32
    images, labels = _test_images()
    for i, c in cases.iterrows():
        want = np.zeros((3, 64, 64), np.float32)
        for t, b in enumerate(c["background"]):
            assert labels[b] != c["label"]
            want[:, 32 * (t // 2):32 * (t // 2) + 32, 32 * (t % 2):32 * (t % 2) + 32] = images[b]
        want[:, c["y"]:c["y"] + 32, c["x"]:c["x"] + 32] = images[c["image"]]
        assert labels[c["image"]] == c["label"]
        np.testing.assert_array_equal(pixels[i], want)


@needs_data
def test_cam_refuses_a_bad_option_and_extra_weights_it_sets_itself():
    with pytest.raises(flickertag.FlickertagError, match="criterion"):
        flickertag.cam("resnet20", n_cases=3, criterion="weight_l1", gradients=False, progress=False)
    with pytest.raises(flickertag.FlickertagError, match="extra"):
        flickertag.cam("resnet20", n_cases=3, extra=[], gradients=False, progress=False)


@needs_data
def test_cam_weights_are_the_methods_definitions_computed_by_torch():
    torch = pytest.importorskip("torch", reason="torch is not installed here (make test installs it)")
    import torch.nn.functional as F

    from flickertag import cifar_resnet as cr
    from flickertag._cam import canvases, gradient_weights

    opts = dict(n_cases=3, seed=2, steps=4, bootstrap=50, keep_maps=3)
    c = flickertag.cam("resnet20", methods=["score-cam", "ablation-cam"], progress=False, **opts)
    layer, cases, pixels = canvases("resnet20", **opts)
    net = cr.cifar_resnet("resnet20", DATA).eval()
    mean = torch.tensor(cr.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(cr.STD).view(1, 3, 1, 1)
    x = (torch.from_numpy(pixels) - mean) / std
    block = dict(net.named_modules())["layer3.2"]  # its output is the tap layer3.2.relu2
    saved = {}
    hook = block.register_forward_hook(lambda _m, _i, out: saved.__setitem__("a", out))
    with torch.no_grad():
        logits = net(x).double()
    hook.remove()
    acts = saved["a"]
    assert acts.shape == (3, 64, 16, 16)
    y = torch.tensor(cases["label"].tolist())
    prob = logits.softmax(1).gather(1, y[:, None])[:, 0]
    np.testing.assert_allclose(c.cases["probability"], prob.numpy(), rtol=1e-4, atol=1e-6)
    w = c.weights
    for i in range(3):
        yi = int(y[i])
        # Score-CAM: the target's probability for the input times each normalised map.
        up = F.interpolate(acts[i:i + 1], size=64, mode="bilinear", align_corners=False)[0]
        lo = up.flatten(1).min(1).values.view(-1, 1, 1)
        hi = up.flatten(1).max(1).values.view(-1, 1, 1)
        masks = (up - lo) / (hi - lo)
        with torch.no_grad():
            p = net(x[i:i + 1] * masks[:, None]).double().softmax(1)[:, yi]
        p = torch.where((hi - lo).flatten() > 0, p, torch.zeros_like(p))
        got = w[(w["case"] == i) & (w["method"] == "score-cam")].sort_values("channel")["weight"].to_numpy()
        np.testing.assert_allclose(got, p.numpy(), rtol=1e-3, atol=1e-5)
        # Ablation-CAM: the drop of the target logit with each channel of the tap zeroed.
        drops = []
        for k in range(64):
            def zero(_m, _i, out, k=k):
                out = out.clone()
                out[:, k] = 0
                return out
            h = block.register_forward_hook(zero)
            with torch.no_grad():
                drops.append(float(logits[i, yi] - net(x[i:i + 1]).double()[0, yi]))
            h.remove()
        got = w[(w["case"] == i) & (w["method"] == "ablation-cam")].sort_values("channel")["weight"].to_numpy()
        np.testing.assert_allclose(got, drops, rtol=1e-3, atol=1e-4)
    # Grad-CAM at the tap the pool reads: ∂y/∂A_k(p) = W[y, k] / (h·w), exactly.
    g = gradient_weights(net, layer, ((torch.from_numpy(pixels) - mean) / std).numpy(), cases["label"].tolist())
    head = net.linear.weight.detach().double().numpy()
    for i in range(3):
        np.testing.assert_allclose(g["grad-cam"][i], head[int(y[i])] / 256, rtol=1e-5, atol=1e-9)
    # Through cam(): Grad-CAM and Grad-CAM++ are scored like the built-in methods.
    full = flickertag.cam("resnet20", methods=["eigencam"], gradients=True, progress=False, **opts)
    assert set(full.metrics["method"]) == {"eigencam", "grad-cam", "grad-cam++"}
    assert full.verdicts("tagging").shape == (3, 4)
