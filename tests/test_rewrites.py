"""Expert rewrites (spaces/rewrites.py), baselines and the rewrite / baseline commands."""
import numpy as np
import pytest

from zeroshot.spaces import get_space
from zeroshot.spaces.baselines import get_baseline
from zeroshot.spaces.mbv2 import MOBILENETV2
from zeroshot.spaces.rewrites import RewriteError, apply_rewrites, parse_stages
from zeroshot.cli import main
from zeroshot.errors import InputError

SPACE = get_space("mbv2")


def rewrite(spec, text=MOBILENETV2):
    codes, notes = apply_rewrites(SPACE, SPACE.parse(text), spec)
    return SPACE.decode(codes), notes


def test_stage_lists():
    assert parse_stages("1-3", 7) == [1, 2, 3]
    assert parse_stages("2,4,last", 7) == [2, 4, 7]
    assert parse_stages("5-last", 7) == [5, 6, 7]


def test_fuse_changes_only_the_chosen_stages():
    (_, _, _, stages), notes = rewrite("fuse:stages=1,3-4")
    _, _, _, before = SPACE.decode(SPACE.parse(MOBILENETV2))
    for s, (new, old) in enumerate(zip(stages, before), 1):
        assert [b[1:] for b in new] == [b[1:] for b in old]            # kernel, expansion, width kept
        assert {b[0] for b in new} == ({1} if s in (1, 3, 4) else {0})
    assert "stage 3: 3 IBN -> fused" in notes[0]


def test_fuse_folds_the_expansion_into_a_full_conv():
    """An IBN block k3 e6 c_in->c_out: 1x1 (c*6c) + dw (6c*9); fused: full 3x3 (c*6c*9); same projection."""
    a = get_space("mbv2").to_ir(MOBILENETV2)
    b = get_space("mbv2").to_ir(apply_rewrites(SPACE, SPACE.parse(MOBILENETV2), "fuse:stages=2")[0])
    c_in, hidden = 16, 96                               # stage 2's first block
    ibn = c_in * hidden + hidden * 9 + 2 * hidden        # expand conv + depthwise + one BN less
    fused = c_in * hidden * 9
    c2, h2 = 24, 144                                    # stage 2's second block
    assert b.params - a.params == (fused - ibn) + (c2 * h2 * 9 - (c2 * h2 + h2 * 9 + 2 * h2))


def test_dw2conv_is_fusion_everywhere_by_default():
    assert rewrite("dw2conv")[0] == rewrite("fuse:stages=1-last")[0]


def test_snap_makes_every_width_a_multiple():
    (_, stem, head, stages), notes = rewrite("snap:P=32")
    widths = [stem, head] + [b[3] for st in stages for b in st]
    assert all(w % 32 == 0 for w in widths)
    assert "16->32" in notes[0] and "24->32" in notes[0]


def test_depth_multiplier_and_its_clipping():
    (_, _, _, stages), notes = rewrite("depth:m=0.5")
    assert [len(s) for s in stages] == [1, 1, 2, 2, 2, 2, 1]           # ceil(0.5 d), at least 1
    (_, _, _, stages), notes = rewrite("depth:m=2")
    assert [len(s) for s in stages] == list(SPACE.curated.slots)     # clipped to the slots
    assert any("stage 2 would have 4 blocks; clipped to 3" in n for n in notes)


def test_uniform_gives_each_stage_its_output_width():
    text = MOBILENETV2.replace("i3e6c24 i3e6c24", "i3e6c40 i3e6c24")
    (_, _, _, stages), notes = rewrite("uniform:stages=2", text)
    assert [b[3] for b in stages[1]] == [24, 24] and "40/24 -> 24" in notes[0]


def test_rewrites_compose_in_order():
    one, _ = rewrite("fuse:stages=1-2,snap:P=16")
    codes = apply_rewrites(SPACE, SPACE.parse(MOBILENETV2), "fuse:stages=1-2")[0]
    two = SPACE.decode(apply_rewrites(SPACE, codes, "snap:P=16")[0])
    assert one == two


def test_leaving_the_curated_set_is_said():
    member = SPACE.format(SPACE.sample_codes(1, np.random.default_rng(0))[0])
    codes, notes = apply_rewrites(SPACE, SPACE.parse(member), "depth:m=1,snap:P=64")
    assert SPACE.contains(SPACE.parse(member)) and not SPACE.contains(codes)
    assert notes[0] == "depth:m=1: no change"
    assert "snap:P=64: the result leaves the curated set" in notes[-1]


@pytest.mark.parametrize("spec, words", [
    ("fuse:stages=0-2", "out of range"), ("fuse:stages=8", "stages 1..7"), ("snap:P=12", "power of two"),
    ("shrink:x=1", "unknown rewrite 'shrink'; choose from"), ("fuse", "fuse needs stages="),
    ("depth:m=-1", "(0, 8]"), ("snap:Q=16", "snap takes P="), ("", "empty rewrite spec"),
])
def test_bad_specs(spec, words):
    with pytest.raises(RewriteError, match=None) as e:
        apply_rewrites(SPACE, SPACE.parse(MOBILENETV2), spec)
    assert words in str(e.value)


def test_rewrite_command_report_and_quiet(capsys):
    assert main(["rewrite", "mbv2", "mobilenetv2", "--apply", "fuse:stages=1-3,snap:P=16",
                 "--device", "mobile-npu-16"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].startswith("before") and out[3].startswith("fuse:stages=1-3") and out[4].startswith("snap:P=16")
    assert "latency_ms" in out[1] and "peak_kb" in out[1] and "score" in out[1]
    assert main(["rewrite", "mbv2", "mobilenetv2", "--apply", "fuse:stages=1-3,snap:P=16", "--quiet"]) == 0
    quiet = capsys.readouterr().out.strip()
    assert out[-1] == "after: " + quiet and quiet.count("|") == 8


@pytest.mark.parametrize("args, words", [
    (["rewrite", "mbv2", "mobilenetv2", "--apply", "fuse:stages=9"], "out of range"),
    (["rewrite", "mbv2", "mobilenetv2", "--apply", "snap:P=10"], "power of two"),
    (["baseline", "mbv2", "resnet"], "choose from mobilenetv2"),
])
def test_bad_commands_exit_2(args, words, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_baseline_command(capsys):
    for task, res in (("classify", 224), ("detect", 320), ("segment", 512)):
        assert main(["baseline", "mbv2", "mobilenetv2", "--task", task]) == 0
        out = capsys.readouterr().out.strip()
        assert out == get_baseline("mbv2", "mobilenetv2", task) and out.startswith(f"r{res} ")
    assert get_space("mbv2").to_ir(get_baseline("mbv2", "mobilenetv2")).params == 3504872


def test_width_multiplier_keeps_the_head_below_one():
    (_, stem, head, stages), notes = rewrite("width:m=0.5")
    assert (stem, head) == (16, 1280) and [st[-1][3] for st in stages] == [8, 16, 16, 32, 48, 80, 160]
    (_, stem, head, _), _ = rewrite("width:m=2")
    assert (stem, head) == (64, 2560)


# ------------------------------------------------------------------ refine (search of fusion / depth)
def test_refine_respects_its_dimensions_and_the_score():
    from zeroshot.estimator.devices import load_device
    from zeroshot.refine import refine
    base = SPACE.parse(MOBILENETV2)
    _, _, _, before = SPACE.decode(base)
    dev = load_device("mobile-npu-16")
    fusion = refine(SPACE, base, ("fusion",), dev, budget=120, seed=0)
    _, _, _, stages = SPACE.decode(SPACE.parse(fusion["arch"]))
    assert [len(s) for s in stages] == [len(s) for s in before]                     # depths untouched
    assert [b[1:] for s in stages for b in s] == [b[1:] for s in before for b in s]  # only the types move
    assert fusion["latency_ms"] < fusion["baseline"]["latency_ms"]
    depth = refine(SPACE, base, ("depth-multiplier",), dev, budget=60, seed=0)
    _, _, _, stages = SPACE.decode(SPACE.parse(depth["arch"]))
    assert {b[0] for s in stages for b in s} == {0}                                  # nothing fused
    assert depth["acceptable"] >= 1 and depth["latency_ms"] <= depth["baseline"]["latency_ms"]


def test_refine_width_and_resolution_and_the_front():
    from zeroshot.estimator.devices import load_device
    from zeroshot.refine import refine
    space = get_space("mbv2", task="segment")
    base = space.parse(get_baseline("mbv2", "mobilenetv2", "segment"))
    r = refine(space, base, ("width", "resolution"), load_device("mobile-npu-16"), budget=80, seed=1)
    front = r["front"]
    lat = [f["latency_ms"] for f in front]
    assert lat == sorted(lat) and all(a["score"] < b["score"] for a, b in zip(front, front[1:]))
    for f in front:
        if f["arch"] != "baseline":
            res, stem, head, stages = space.decode(space.parse(f["arch"]))
            assert res in (384, 448, 512) and (stem, head) == (32, 1280)
            assert [len(s) for s in stages] == [1, 2, 3, 4, 3, 3, 1]


def test_refine_command_and_bad_dimension(capsys):
    assert main(["refine", "mbv2", "mobilenetv2", "--search", "fusion", "--budget", "60"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("best r224 ") and "latency_ms" in out[1]
    assert main(["refine", "mbv2", "mobilenetv2", "--search", "channels"]) == 2
    assert "expected one or more of fusion, depth-multiplier" in capsys.readouterr().err


# ------------------------------------------------------------------ pattern mining
def test_patterns_from_a_screen_database(tmp_path, capsys):
    from zeroshot.patterns import mine
    best = ["r224 s32 | f3e1c32 | f3e6c32 | i3e6c64 | i3e6c64 | i3e6c96 | i3e6c160 | i3e6c320 | h1280"] * 5
    rest = ["r224 s32 | i3e1c16 | i3e6c24 | i3e6c32 | i3e6c64 | i5e6c96 | i3e6c160 | i3e6c320 | h1280"] * 15
    assert [r["spec"] for r in mine(SPACE, best, best + rest)] == ["fuse:stages=1-2", "snap:P=32"]
    db = str(tmp_path / "s.db")
    assert main(["screen", "mbv2", "-n", "300", "--survivors", "0", "--top", "5", "--db", db]) == 0
    capsys.readouterr()
    assert main(["patterns", db, "--by", "latency_ms", "--ascending", "--top", "20"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("run 1: best 20 by latency_ms") and out[-1].startswith("apply: ")
    spec = out[-1][len("apply: "):]
    if not spec.startswith("("):                    # whatever it mined applies as a rewrite
        assert main(["rewrite", "mbv2", "mobilenetv2", "--apply", spec, "--quiet"]) == 0
    assert main(["patterns", db, "--by", "nothing"]) == 2


def test_refine_depth_multipliers_reach_every_depth_and_no_score_is_the_floor():
    from zeroshot.estimator.devices import load_device
    from zeroshot.refine import DEPTH_MULTIPLIERS, Refiner, refine
    base = SPACE.parse(MOBILENETV2)
    ref = Refiner(SPACE, base, ("depth-multiplier",))
    depths = set()
    for i in range(len(DEPTH_MULTIPLIERS)):
        g = ref.base_genome.copy()
        g[ref.n_blocks:ref.n_blocks + len(ref.stages)] = i
        depths.add(tuple(len(s) for s in SPACE.decode(ref.codes(g[None])[0])[3]))
    assert {d[3] for d in depths} == {1, 2, 3, 4}                     # stage 4 (4 blocks): every depth
    dev = load_device("mobile-npu-16")
    floor = refine(SPACE, base, ("depth-multiplier",), dev, budget=100, seed=0, proxies=())
    scored = refine(SPACE, base, ("depth-multiplier",), dev, budget=100, seed=0)
    assert floor["acceptable"] == floor["evaluated"] and floor["front"] == []
    assert floor["latency_ms"] < 0.7 * floor["baseline"]["latency_ms"]
    # removing a block lowers both topology proxies, so no shallower network keeps the baseline's score
    assert scored["latency_ms"] == scored["baseline"]["latency_ms"]


def test_proxy_view_scores_a_dense_network_through_its_backbone():
    from zeroshot.refine import proxy_view, score_values
    space = get_space("mbv2", task="detect")
    base = space.parse(get_baseline("mbv2", "mobilenetv2", "detect"))
    view, codes_of = proxy_view(space, 64)
    assert view.task == "classify" and view.code_length == space.code_length
    v = codes_of(base[None])
    assert v[0, 0] == 64 and np.array_equal(v[0, 1:], base[1:]) and base[0] == 320      # input untouched
    cache = {}
    a = score_values(space, base[None], ("entropy", "meco"), 64, batch_size=4, cache=cache)
    assert np.isfinite(a["meco"]).all() and len(cache) == 1
    (key,) = cache
    cache[key] = {"meco": a["meco"][0] + 1.0}                            # a second call reads the cache
    b = score_values(space, base[None], ("entropy", "meco"), 64, batch_size=4, cache=cache)
    assert b["meco"][0] == a["meco"][0] + 1.0 and b["entropy"][0] == a["entropy"][0]
    assert a["entropy"][0] == score_values(space, base[None], ("entropy",), None)["entropy"][0]
    with pytest.raises(InputError, match="input is fixed"):
        proxy_view(get_space("nb201"), 64)          # no resolution in its codes to set
