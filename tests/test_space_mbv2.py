"""The curated accelerator-aware mbv2 space: curation, exact size, encodings, codes, builder, CLI."""
import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

from zeroshot.errors import ParameterError
from zeroshot.estimator.counts import analytic_counts
from zeroshot.spaces import EncodingError, get_space
from zeroshot.spaces.builder import build, count_parameters
from zeroshot.spaces.curation import MOBILENETV2_RAW, RawSpace, RawStage, curate, make_divisible
from zeroshot.spaces.mbv2 import MOBILENETV2, Mbv2Space
from zeroshot.cli import main

# A small raw space whose multipliers overlap (0.8's channel plans are all 1.0's), so the exact size
# needs the inclusion-exclusion count; small enough to enumerate.
TINY = RawSpace(stem=32, head=64, multipliers=(0.8, 1.0, 1.2), resolutions=(64,), kernels=(3,), expansions=(1,),
                stages=(RawStage(1, 16, (16, 32), 1, (1,)), RawStage(2, 24, (16, 48), 1, (1, 2)),
                        RawStage(2, 32, (24, 64), 1, (1,))))


@pytest.fixture(scope="module")
def space():
    return get_space("mbv2")


def channels(text):
    """Every channel count written in an encoding: stem, blocks, head."""
    head, *blocks = text.split("|")[::-1]
    values = [int(head.strip()[1:]), int(text.split()[1][1:])]
    return values + [int(tok.split("c")[1]) for field in blocks[:-1] for tok in field.split()]


def random_encoding(rng, slots):
    """An arbitrary (mostly non-curated) encoding: any widths per block, kernels, expansions."""
    stages = [" ".join(f"{'if'[rng.integers(2)]}{rng.choice((1, 3, 5, 7))}e{rng.integers(1, 7)}c{rng.integers(1, 97)}"
                       for _ in range(rng.integers(1, n + 1))) for n in slots]
    return f"r{rng.integers(8, 129)} s{rng.integers(1, 65)} | " + " | ".join(stages) + f" | h{rng.integers(1, 300)}"


# ------------------------------------------------------------------ MobileNetV2 itself
def test_mobilenetv2_parses_builds_and_has_the_published_parameter_count(space):
    codes = space.parse(MOBILENETV2)
    assert space.format(codes) == MOBILENETV2
    arch = space.to_ir(codes)
    assert arch.params == 3_504_872 == analytic_counts([arch])["params"][0]
    net = build(arch).eval()
    assert count_parameters(net) == 3_504_872
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    assert not space.contains(codes)                  # 16, 24, 160 ... are not curated at P=16


# ------------------------------------------------------------------ curation
@pytest.mark.parametrize("p", [8, 16, 32])
def test_curated_channels_are_multiples_of_p_few_and_far_apart(p):
    cur = curate(MOBILENETV2_RAW, p)
    assert all(c % p == 0 for c in cur.stem + cur.head)
    for per_stage in cur.widths:
        for options in per_stage:
            assert 1 <= len(options) <= MOBILENETV2_RAW.max_options
            assert all(w % p == 0 and w >= p for w in options)
            assert all(b >= 1.25 * a for a, b in zip(options, options[1:]))
    assert all(r % 32 == 0 for r in cur.resolutions)
    assert cur.resolutions == (160, 192, 224) and cur.kernels == (3, 5) and cur.expansions == (1, 3, 6)


def test_make_divisible_follows_the_reference_rule():
    assert [make_divisible(v, 8) for v in (3, 12, 13, 100, 1280 * 1.4)] == [8, 16, 16, 104, 1792]
    assert make_divisible(22.6, 16) == 32                   # 16 would lose more than 10%


def test_curate_rejects_bad_input():
    with pytest.raises(ValueError, match="positive integer"):
        curate(MOBILENETV2_RAW, 0)
    with pytest.raises(ValueError, match="odd"):
        curate(RawSpace(**{**MOBILENETV2_RAW.__dict__, "kernels": (3, 4)}), 16)
    with pytest.raises(ValueError, match="blocks must be among"):
        curate(RawSpace(**{**MOBILENETV2_RAW.__dict__, "blocks": ("i", "tucker")}), 16)


def test_size_is_exact_by_enumeration():
    """Enumerate every genotype of a tiny raw space as text; distinct networks == size == what sampling
    reaches, and contains() says yes exactly to them."""
    space = Mbv2Space(raw=TINY)
    cur = space.curated
    assert cur.channel_plans < sum(len(list(itertools.product(*w))) for w in cur.widths)   # overlaps exist
    blocks = [f"{t}3e1" for t in "if"]
    texts = set()
    for m, widths in enumerate(cur.widths):
        for ws in itertools.product(*widths):
            stage_options = [[" ".join(f"{b}c{w}" for b in combo) for d in depths
                              for combo in itertools.product(blocks, repeat=d)]
                             for w, depths in zip(ws, cur.depths)]
            for stages in itertools.product(*stage_options):
                texts.add(f"r64 s{cur.stem[m]} | " + " | ".join(stages) + f" | h{cur.head[m]}")
    members = np.unique(np.array([space.parse(t) for t in texts]), axis=0)
    assert len(members) == space.size == 720
    assert space.contains(members).all()
    sampled = np.unique(space.sample_codes(50_000, np.random.default_rng(0)), axis=0)
    assert len(sampled) == 720 and np.array_equal(sampled, members)
    assert len(space.sample(720, seed=1)) == 720
    with pytest.raises(ValueError, match="only 720"):
        space.sample(721)


def test_default_size_matches_its_parts(space):
    cur = space.curated
    stages = 1
    for depths in cur.depths:
        stages *= sum(12 ** d for d in depths)               # 2 types x 2 kernels x 3 expansions per block
    assert space.size == 3 * cur.channel_plans * stages == 792_238_737_304_369_265_217_896_448
    assert get_space("mbv2", parallelism=32).size < space.size < get_space("mbv2", parallelism=8).size


# ------------------------------------------------------------------ codes and membership
def test_codes_are_fixed_length_phenotype_values_with_zero_inactive_slots(space):
    codes = space.sample_codes(2000, np.random.default_rng(3))
    assert codes.dtype == np.int64 and codes.shape == (2000, space.code_length)
    blocks = codes[:, 3:].reshape(2000, -1, 5)
    absent = blocks[..., 0] == 0
    assert absent.any() and (blocks[absent] == 0).all()
    assert set(np.unique(codes[:, 0])) == {160, 192, 224}
    assert set(np.unique(blocks[~absent][:, 2])) == {3, 5} and set(np.unique(blocks[~absent][:, 3])) == {1, 3, 6}
    for c in codes[:50]:
        text = space.format(c)
        assert np.array_equal(space.parse(text), c)
        assert all(w % 16 == 0 for w in channels(text))


def test_any_parseable_encoding_has_codes_and_whitespace_is_not_canonical(space):
    rng = np.random.default_rng(4)
    for _ in range(100):
        text = random_encoding(rng, space.curated.slots)
        codes = space.parse(text)
        assert space.format(codes) == text
        assert space.format(space.parse("  " + text.replace(" ", "   ").replace("|", " |\t"))) == text


def test_contains_rejects_what_is_not_curated(space):
    members = space.sample_codes(200, np.random.default_rng(5))
    assert space.contains(members).all()
    res, stem, head, stages = space.decode(members[0])
    s3 = stages[2]                                                    # stage 3: 2 to 4 blocks
    w = s3[0][3]
    other = next(x for x in (32, 48, 64) if x != w)
    variants = {
        "resolution": (res + 8, stem, head, stages),
        "width off the grid": (res, stem, head, stages[:2] + [[b[:3] + (w + 8,) for b in s3]] + stages[3:]),
        "non-uniform stage": (res, stem, head, stages[:2] + [s3[:-1] + [s3[-1][:3] + (other,)]] + stages[3:]),
        "kernel 7": (res, stem, head, stages[:2] + [[(s3[0][0], 7) + s3[0][2:]] + s3[1:]] + stages[3:]),
        "depth 1": (res, stem, head, stages[:2] + [s3[:1]] + stages[3:]),
        "head of another multiplier": (res, stem, head + 16, stages),
    }
    for what, genes in variants.items():
        codes = space.encode(*genes)
        space.build_ir(codes)
        assert not space.contains(codes), what
    assert not space.contains(space.parse(MOBILENETV2))


def test_non_canonical_codes_are_refused(space):
    codes = space.sample_codes(1, np.random.default_rng(6))[0]
    gap = codes.copy()
    gap[3:8] = 0                                      # stage 1's only block removed
    odd = codes.copy()
    odd[3 + 2] = 4                                    # even kernel
    for bad, words in ((gap, "stage 1"), (odd, "odd kernel"), (codes[:-1], "108 integers")):
        with pytest.raises(EncodingError, match=words):
            space.format(bad)


# ------------------------------------------------------------------ mutation and crossover
def test_mutation_and_crossover_of_members_stay_curated(space):
    rng = np.random.default_rng(7)
    members = space.sample_codes(100, rng)
    for a, b in zip(members[:50], members[50:]):
        m = space.mutate_codes(a, rng)
        assert not np.array_equal(m, a) and space.contains(m)
        child = space.crossover_codes(a, b, rng)
        assert space.contains(child)
        assert child[0] in (a[0], b[0])
        ga, gb, gc = space.decode(a), space.decode(b), space.decode(child)
        for sa, sb, sc in zip(ga[3], gb[3], gc[3]):
            assert len(sc) in (len(sa), len(sb))
            assert all(blk[:3] in (sa[j][:3] if j < len(sa) else None, sb[j][:3] if j < len(sb) else None)
                       for j, blk in enumerate(sc))


def test_mutation_and_crossover_work_outside_the_curated_set(space):
    base = space.parse(MOBILENETV2)
    other = space.parse(random_encoding(np.random.default_rng(8), space.curated.slots))
    for seed in range(20):
        rng = np.random.default_rng(seed)
        m = space.mutate_codes(base, rng)
        assert not np.array_equal(m, base)
        space.build_ir(m)
        space.build_ir(space.crossover_codes(base, other, rng))


# ------------------------------------------------------------------ builder and counts
def test_analytic_params_equal_torch_on_arbitrary_archs(space):
    """Hundreds of arbitrary encodings (per-block widths, kernels 1-7, expansions 1-6), built on the meta
    device (no weights allocated): analytic == torch parameter counts."""
    rng = np.random.default_rng(9)
    archs = [space.to_ir(random_encoding(rng, space.curated.slots)) for _ in range(200)]
    params = analytic_counts(archs)["params"]
    with torch.device("meta"):
        torch_params = [count_parameters(build(a)) for a in archs]
    assert params.tolist() == torch_params == [a.params for a in archs]


def test_forward_shapes():
    space = get_space("mbv2", classes=10)
    rng = np.random.default_rng(10)
    for text in [space.format(space.sample_codes(1, rng)[0]), random_encoding(rng, space.curated.slots)]:
        arch = space.to_ir(text)
        net = build(arch).eval()
        with torch.no_grad():
            out = net(torch.randn(1, *arch.input_shape))
        assert out.shape == (1, 10)


def test_classes_change_the_head_only():
    a, b = get_space("mbv2", classes=10).to_ir(MOBILENETV2), get_space("mbv2").to_ir(MOBILENETV2)
    assert b.params - a.params == 990 * 1280 + 990


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad, words", [
    ("", "expected 9 fields"),
    (MOBILENETV2.replace("i3e6c24 i3e6c24", "i3e6c24 x3e6c24"), "stage 2 block 2: bad block 'x3e6c24'"),
    (MOBILENETV2.replace("i3e6c24", "i4e6c24", 1), "kernel 4 must be odd"),
    (MOBILENETV2.replace("i3e6c24", "i3e6c024", 1), "bad block 'i3e6c024'"),
    (MOBILENETV2.replace("i3e6c24", "i3e6c70000", 1), "channels at most 65536"),
    (MOBILENETV2.replace("r224", "r0"), "bad resolution token 'r0'"),
    (MOBILENETV2.replace("s32", "s3x2"), "bad stem channels token 's3x2'"),
    (MOBILENETV2.replace("h1280", "h1280 x"), "'h1280 x'"),
    (MOBILENETV2.replace("h1280", "1280"), "bad head channels token '1280'"),
    (MOBILENETV2.replace("| i3e1c16 |", "| |"), "stage 1 has no blocks"),
    (MOBILENETV2.replace("i3e6c320", "i3e6c320 i3e6c320"), "stage 7 has 2 blocks; this space holds at most 1"),
    (MOBILENETV2.replace("r224 s32", "r224"), "two tokens"),
    (MOBILENETV2.replace("i3e6c320 | h1280", "i3e6c320"), "expected 9 fields"),
    ("r224 s32 | i３e1c16 | i3e6c24 | i3e6c32 | i3e6c64 | i3e6c96 | i3e6c160 | i3e6c320 | h1280", "'i３e1c16'"),
])
def test_malformed_encodings_name_the_token(space, bad, words):
    with pytest.raises(EncodingError) as e:
        space.parse(bad)
    assert words in str(e.value)


def test_options_are_validated():
    with pytest.raises(ParameterError, match="task must be one of classify, detect, segment, got 'pose'"):
        get_space("mbv2", task="pose")
    with pytest.raises(ValueError, match="parallelism"):
        get_space("mbv2", parallelism=-16)
    with pytest.raises(ValueError, match="classes"):
        get_space("mbv2", classes=0)


# ------------------------------------------------------------------ command line
def test_cli_parallelism_reaches_curation(tmp_path, capsys):
    out = tmp_path / "archs.txt"
    assert main(["sample", "mbv2", "-n", "20", "--seed", "1", "-P", "32", "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(set(lines)) == 20 and all(c % 32 == 0 for line in lines for c in channels(line))
    assert main(["sample", "mbv2", "-n", "3", "--task", "pose"]) == 2
    assert "--task must be one of classify, detect, segment, got 'pose'" in capsys.readouterr().err


def test_readme_demo_pipe_and_spaces_listing(capsys):
    demo = subprocess.run(f"{sys.executable} -m zeroshot sample mbv2 -n 5 --seed 0 | "
                          f"{sys.executable} -m zeroshot estimate mbv2 --archs -", shell=True,
                          capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    rows = demo.stdout.splitlines()
    assert rows[0].startswith("arch,params,macs,peak_activation_bytes") and len(rows) == 6
    assert all(int(r.split(",")[1]) > 0 for r in rows[1:])
    assert main(["spaces"]) == 0
    assert any(line.split()[:2] == ["mbv2", "7.922e+26"] for line in capsys.readouterr().out.splitlines())
