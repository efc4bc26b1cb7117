"""Searchers on a synthetic oracle: budgets, determinism, constraints, the pre-filter, the CLI, bad input."""
import numpy as np
import pytest

from zeroshot.estimator.devices import load_device
from zeroshot.estimator.segmented import SegmentedEvaluator, latency_metric
from zeroshot.spaces import get_space
from zeroshot.cli import main
from zeroshot.errors import UserError
from zeroshot.search import (EVALUATED, SCORED, DictEvaluator, OracleEvaluator, SearchConfig, TrainingEvaluator,
                             run_search)
from zeroshot.store import ResultStore
from zeroshot.strategies import list_strategies

SMALL = dict(population=4, sample=2, children=8, pool=100)
TOPOLOGY = ("live_macs", "entropy")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def space():
    return get_space("nb201")


@pytest.fixture(scope="module")
def table(space):
    """Synthetic accuracies of every NB201 cell: rising with parameters (the published count: 73,306 +
    243,040 per 3x3 conv edge + 28,000 per 1x1 conv edge), plus seeded noise."""
    codes = np.concatenate(list(space.enumerate_codes()))
    params = 73_306 + 243_040 * (codes == 3).sum(1) + 28_000 * (codes == 2).sum(1)
    noise = np.random.default_rng(0).normal(0, 1.0, len(codes))
    acc = 70 + 20 * (params - params.min()) / (params.max() - params.min()) + noise
    return {space.format(c): float(a) for c, a in zip(codes, acc)}


@pytest.fixture(scope="module")
def oracle_csv(table, tmp_path_factory):
    path = tmp_path_factory.mktemp("oracle") / "oracle.csv"
    with open(path, "w") as f:
        f.write("index,arch_str,acc\n")
        for i, (a, v) in enumerate(table.items()):
            f.write(f"{i},{a},{v!r}\n")
    return str(path)


def search(strategy, table, **kw):
    cfg = SearchConfig(space="nb201", strategy=strategy, budget=kw.pop("budget", 12), proxies=TOPOLOGY,
                       **{**SMALL, **kw})
    return run_search(cfg, DictEvaluator(table))


@pytest.mark.parametrize("strategy", ["random", "evolution", "prefiltered", "zeroshot"])
def test_each_strategy_spends_its_budget_deterministically(strategy, table, space):
    res = search(strategy, table, seed=3)
    traj = res["trajectory"]
    assert len(traj) == (1 if strategy == "zeroshot" else 12)
    keys = {space.format(space.canonical_codes(space.parse(r["arch"])[None])[0]) for r in traj}
    assert len(keys) == len(traj)                                    # never evaluates an isomorph twice
    assert all(r["accuracy"] == table[r["arch"]] for r in traj)
    assert res["best"]["accuracy"] == max(r["accuracy"] for r in traj)
    assert [r["best"] for r in traj] == list(np.maximum.accumulate([r["accuracy"] for r in traj]))
    assert search(strategy, table, seed=3)["trajectory"] == traj
    if strategy != "random":
        assert search(strategy, table, seed=4)["trajectory"] != traj
    assert (res["scored"] > 0) == (strategy in ("prefiltered", "zeroshot"))


def test_prefilter_helps_when_the_proxies_agree_with_accuracy(table):
    """The synthetic accuracy rises with size, as the topology proxies do: the pre-filtered search must
    beat random search and plain evolution at the same budget on every seed pair."""
    for seed in range(2):
        pre = search("prefiltered", table, seed=seed)["best"]["accuracy"]
        assert pre > search("random", table, seed=seed)["best"]["accuracy"]
        assert pre >= search("evolution", table, seed=seed)["best"]["accuracy"]


@pytest.mark.parametrize("strategy", ["random", "evolution", "prefiltered", "zeroshot"])
def test_latency_constraint_is_never_broken(strategy, table, space, tmp_path):
    lat = SegmentedEvaluator(space, {"latency_ms": latency_metric(load_device("mobile-npu-16"))}).evaluate(
        space.sample_codes(300, np.random.default_rng(0)))["latency_ms"]
    limit = float(np.percentile(lat, 30))
    db = str(tmp_path / "s.db")
    cfg = SearchConfig(space="nb201", strategy=strategy, budget=10, proxies=TOPOLOGY, max_latency_ms=limit,
                       **SMALL)
    res = run_search(cfg, DictEvaluator(table), db=db)
    assert all(r["latency_ms"] <= limit for r in res["trajectory"])
    assert res["removed_by"]["latency_ms"] > 0                        # the constraint was active
    store = ResultStore(db, space="nb201")
    rows = store.candidates(res["run_id"])
    assert rows and all(r["latency_ms"] <= limit for r in rows)      # nothing over it scored or trained
    assert {r["stage"] for r in rows} == ({EVALUATED, SCORED} if strategy in ("prefiltered", "zeroshot")
                                          else {EVALUATED})
    assert store.run_summary(res["run_id"])["best"]["arch"] == res["best"]["arch"]
    store.close()


def test_impossible_constraint_and_unknown_strategy(table):
    with pytest.raises(UserError, match=r"latency_ms <= 1e-06 removed"):
        search("random", table, max_latency_ms=1e-6)
    with pytest.raises(UserError, match="unknown strategy 'bayes'; choose from " + ", ".join(list_strategies())):
        search("bayes", table)
    with pytest.raises(UserError, match="budget"):
        search("random", table, budget=0)


def test_partial_oracle_restricts_the_search(table, space):
    some = dict(list(table.items())[::10])
    for strategy in ("random", "prefiltered"):
        res = search(strategy, some, budget=6)
        assert all(r["arch"] in some for r in res["trajectory"])


def test_prefilter_with_a_network_proxy(tmp_path):
    tiny = get_space("nb201", channels=4, cells=1, resolution=8)
    table = {a: float(len(a)) for a in tiny.sample(400, seed=0)}
    cfg = SearchConfig(space="nb201", space_options=dict(channels=4, cells=1, resolution=8), strategy="prefiltered",
                       budget=4, proxies=("live_macs", "synflow"), population=2, sample=2, children=6, pool=30)
    res = run_search(cfg, DictEvaluator(table), db=str(tmp_path / "n.db"))
    store = ResultStore(str(tmp_path / "n.db"), space="nb201")
    scored = store.candidates(res["run_id"], "synflow IS NOT NULL")
    # only the best network_per_kept x kept by the topology proxies pay for the network proxy
    assert 0 < len(scored) <= 4 * 2 + 4 * (4 - 2)
    store.close()


def test_oracle_file_errors(tmp_path, space):
    bad = tmp_path / "o.csv"
    bad.write_text("name,acc\nx,1\n")
    with pytest.raises(UserError, match="has no column 'arch' or 'arch_str'; its columns: name, acc"):
        OracleEvaluator(str(bad), "acc", space)
    bad.write_text("arch,acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n|x|,2\n")
    with pytest.raises(UserError, match="line 3"):
        OracleEvaluator(str(bad), "acc", space)
    with pytest.raises(UserError, match="has no column 'top1'"):
        OracleEvaluator(str(bad), "top1", space)
    with pytest.raises(UserError, match="needs --column"):
        OracleEvaluator(str(bad), None, space)


def test_cli_prints_trajectory_front_and_best_last(oracle_csv, table, capsys):
    assert main(["search", "nb201", "--strategy", "evolution", "--budget", "9", "--oracle", oracle_csv,
                 "--column", "acc", "--seed", "1", "--population", "4", "--sample", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len([line for line in out if line.split()[0].isdigit()]) == 9
    best = out[-1].split()
    assert best[0] == "best" and best[2] == "accuracy" and best[4] == "latency_ms"
    assert float(best[3]) == pytest.approx(table[best[1]], abs=1e-3)
    assert float(best[3]) == pytest.approx(max(float(line.split()[2]) for line in out if line.split()[0].isdigit()),
                                           abs=1e-3)


def test_cli_real_training_search(tmp_path, capsys):
    rng = np.random.default_rng(0)
    npz = tmp_path / "d.npz"
    np.savez(npz, x=rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), y=rng.integers(0, 3, 20))
    db = str(tmp_path / "t.db")
    assert main(["search", "nb201", "--strategy", "random", "--budget", "2", "--data", str(npz), "--classes", "3",
                 "--epochs", "1", "--max-steps", "1", "--train-batch-size", "8", "--db", db]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("best |")
    store = ResultStore(db, space="nb201", space_options={"classes": 3})
    rows = store.candidates(store.runs()[-1])
    assert len(rows) == 2 and all(r["steps"] == 1 and r["accuracy"] == r["val_accuracy"] for r in rows)
    store.close()


@pytest.mark.parametrize("extra, message", [
    (["--strategy", "bayes", "--oracle", "O", "--column", "acc"], "unknown strategy 'bayes'"),
    (["--strategy", "random", "--oracle", "O"], "needs --column"),
    (["--strategy", "random", "--oracle", "O", "--column", "top1"], "has no column 'top1'"),
    (["--strategy", "random"], "needs --data"),
    (["--strategy", "random", "--oracle", "O", "--column", "acc", "--device", "nope"], "nope"),
    (["--strategy", "random", "--oracle", "O", "--column", "acc", "--proxies", "magic"], "unknown proxy 'magic'"),
    (["--strategy", "random", "--oracle", "O", "--column", "acc", "--max-latency-ms", "0.000001"], "relax it"),
    (["--strategy", "prefiltered", "--oracle", "O", "--column", "acc", "--cheap", "synflow"], "topology proxy"),
])
def test_cli_bad_input_one_line_exit_2(extra, message, oracle_csv, capsys):
    argv = ["search", "nb201", "--budget", "3"] + [oracle_csv if a == "O" else a for a in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_training_evaluator_needs_data():
    with pytest.raises(UserError, match="needs --data"):
        TrainingEvaluator(SearchConfig(space="nb201", strategy="random", budget=1))
