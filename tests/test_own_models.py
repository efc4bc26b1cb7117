"""Users' own torch networks through the API and every command that takes them (--model FILE.py:FUNC)."""
import csv
import io
import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from torch import nn

import zeroshot as zs
from zeroshot.cli import main
from zeroshot.errors import InputError, ParameterError
from zeroshot.proxies import network
from zeroshot.spaces import Arch

NETS = '''
import torch
from torch import nn


class SE(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // 4, 1), nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))


def net(width=16, classes=10):
    return nn.Sequential(
        nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.Hardswish(),
        nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False), nn.BatchNorm2d(width), nn.ReLU6(),
        SE(width), nn.Conv2d(width, 2 * width, 1, bias=False), nn.BatchNorm2d(2 * width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(2 * width, classes))


def family():
    return [net(w) for w in range(8, 72, 4)]


def recurrent():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.LSTM(8, 8))


def not_a_net():
    return "resnet"


def pair():
    return [net(), recurrent()]
'''


@pytest.fixture
def nets(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return str(path)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def user_net(nets):
    namespace = {}
    exec(compile(open(nets).read(), nets, "exec"), namespace)
    return namespace["net"]()


def test_estimate_a_module_equals_the_cli_and_counts_as_torch(nets, capsys):
    module = user_net(nets)
    t = zs.estimate(module, device="mobile-npu-16", input_shape=(3, 64, 64))
    assert int(t["params"][0]) == sum(p.numel() for p in module.parameters())
    code, out, _ = run(capsys, "estimate", "--model", f"{nets}:net", "--input", "3,64,64", "--device", "mobile-npu-16")
    got = rows(out)
    assert code == 0 and got[0]["arch"] == "net" and int(got[0]["params"]) == int(t["params"][0])
    assert float(got[0]["latency_ms"]) == pytest.approx(float(t["latency_ms"][0]), rel=1e-5)


def test_per_layer_rows_add_up_to_the_model(nets, capsys):
    module = user_net(nets)
    whole = zs.estimate(module, device="edgetpu-like", input_shape=(3, 64, 64))["latency_ms"][0]
    layers = zs.estimate(module, device="edgetpu-like", input_shape=(3, 64, 64), per_layer=True)
    assert {"kernel", "latency_ms", "macs", "bytes_moved", "lane_utilisation", "bound", "share"} <= set(layers.columns)
    assert layers["latency_ms"].sum() == pytest.approx(whole, rel=1e-9)
    code, out, _ = run(capsys, "estimate", "--model", f"{nets}:net", "--input", "3,64,64", "--device", "edgetpu-like",
                       "--per-layer")
    assert code == 0 and len(rows(out)) == len(layers)
    with pytest.raises(zs.Error, match="device must be given for per-layer costs"):
        zs.estimate(module, input_shape=(3, 64, 64), per_layer=True)


def test_score_and_measure_take_modules(nets, capsys, one_torch_thread):
    code, out, _ = run(capsys, "score", "--model", f"{nets}:family", "--input", "3,32,32", "--proxies",
                       "synflow,naswot", "--batch-size", "8")
    got = rows(out)
    assert code == 0 and [r["arch"] for r in got][:2] == ["family[0]", "family[1]"] and len(got) == 16
    assert all(np.isfinite(float(r["synflow"])) for r in got)
    code, out, _ = run(capsys, "measure", "--model", f"{nets}:net", "--input", "3,32,32", "--rounds", "3")
    assert code == 0 and float(rows(out)[0]["latency_ms"]) > 0


def test_calibrate_on_own_models_predicts_other_models(nets, tmp_path, capsys):
    namespace = {}
    exec(compile(open(nets).read(), nets, "exec"), namespace)
    family = namespace["family"]()                                       # 16 widths, 8 to 68
    truth = zs.estimate(family, device="edgetpu-like", input_shape=(3, 32, 32))["latency_ms"]
    fit = [0, 1, 2, 4, 6, 8, 10, 12, 14, 15]
    rest = [i for i in range(len(family)) if i not in fit]
    measurements = tmp_path / "m.csv"
    measurements.write_text("arch,latency_ms\n" + "".join(f"family[{i}],{truth[i]}\n" for i in fit))
    device_file = tmp_path / "dev.json"
    code, out, err = run(capsys, "calibrate", "--model", f"{nets}:family", "--input", "3,32,32", "--measurements",
                         str(measurements), "-o", str(device_file))
    assert code == 0, err
    assert json.loads(device_file.read_text())["space"] is None
    device = zs.calibrate([family[i] for i in fit], truth[fit], input_shape=(3, 32, 32))
    predicted = zs.estimate([family[i] for i in rest], device=device, input_shape=(3, 32, 32))["latency_ms"]
    assert spearmanr(predicted, truth[rest]).statistic >= 0.8
    assert np.median(np.abs(predicted / truth[rest] - 1)) < 0.1
    from_file = zs.estimate([family[i] for i in rest], device=str(device_file), input_shape=(3, 32, 32))
    np.testing.assert_allclose(from_file["latency_ms"], predicted, rtol=1e-4)


@pytest.mark.parametrize("argv, words", [
    (["estimate", "mbv2", "--model", "{nets}:net", "--input", "3,32,32"], "not both"),
    (["estimate", "--model", "{nets}:net"], "--input must be given with --model"),
    (["estimate", "--model", "{nets}:not_a_net", "--input", "3,32,32"], "must return a torch.nn.Module"),
    (["estimate", "--model", "{nets}:recurrent", "--input", "3,32,32"], "(LSTM) is not supported"),
    (["estimate", "--model", "{nets}:net", "--input", "5,32,32"], "input"),
    (["score", "--model", "{nets}:net", "--input", "3,32"], "--input must be C,H,W"),
    (["estimate", "--archs", "x.txt"], "name a space"),
    (["score", "--model", "{broken}:net", "--input", "3,32,32"], "does not import: ModuleNotFoundError"),
    (["estimate", "--model", "{nets}:pair", "--input", "3,32,32"], "pair[1]: 1 (LSTM) is not supported"),
    (["estimate", "--model", "{nets}:net", "--input", "1,32,32"], "--input must be"),
    (["estimate", "--model", "{nets}:net", "--input", "3,100000,100000"], "H and W at most 4096"),
    (["score", "--model", "{nets}:net", "--input", "3,32,32", "--seed", "-1"], "--seed must be an integer from 0 to 2^63 - 1"),
])
def test_bad_model_input_is_one_line_exit_2(nets, tmp_path, capsys, argv, words):
    broken = tmp_path / "broken.py"
    broken.write_text("import a_module_nobody_has\n")
    code, out, err = run(capsys, *[a.format(nets=nets, broken=broken) for a in argv])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and words in err, err


def test_modules_need_an_input_shape():
    with pytest.raises(zs.Error) as e:
        zs.estimate(nn.Conv2d(3, 8, 3))
    assert e.value.param == "input_shape"
    arch = zs.from_torch(nn.Sequential(nn.Conv2d(3, 8, 3)), input_shape=(3, 8, 8))
    assert isinstance(arch, Arch) and arch.ops[0].h_out == 6


def test_own_networks_are_refused_clearly_where_they_do_not_fit(nets, monkeypatch):
    """A module as a screen's baseline names the conversion; images of another side name input_shape; a
    network a labelled proxy cannot read is refused before any network is scored; shapes must be integers."""
    with pytest.raises(ParameterError, match=r"zs\.from_torch\(module") as e:
        zs.screen("mbv2", baseline=user_net(nets), n=50, survivors=0)
    assert e.value.param == "baseline"
    x, y = np.zeros((4, 3, 64, 64), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ParameterError) as e:
        zs.score(user_net(nets), input_shape=(3, 32, 32), data=(x, y), proxies=["synflow"])
    assert e.value.param == "input_shape" and "(3, 64, 64)" in str(e.value)
    scored = []
    monkeypatch.setattr(network, "compute_network_proxies", lambda *a, **k: scored.append(a) or {"snip": 0.0})
    with pytest.raises(InputError, match="snip needs a classifier's labels"):
        zs.score([user_net(nets), nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))], input_shape=(3, 16, 16),
                 proxies=["snip"], data=(np.zeros((4, 3, 16, 16), np.float32), np.zeros(4, np.int64)))
    assert scored == []
    with pytest.raises(ParameterError):
        zs.from_torch(user_net(nets), (3, 32.5, 32))
