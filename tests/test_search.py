"""Searchers on a synthetic oracle: budgets, determinism, constraints, the pre-filter, the shared aging
evolution, the Python entry point, the CLI, bad input."""
from collections import deque

import numpy as np
import pytest

from zeroshot.cli import main
from zeroshot.constraints import InfeasibleError
from zeroshot.errors import DataError, Error, ParameterError, UnknownNameError
from zeroshot.estimator.devices import load_device
from zeroshot.estimator.segmented import SegmentedEvaluator, latency_metric
from zeroshot.evaluators import DictEvaluator, OracleEvaluator, TrainingEvaluator
from zeroshot.evolution import aging_evolution, tournament
from zeroshot.searching import SearchConfig, run_search, search
from zeroshot.spaces import get_space
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


def run(strategy, table, **kw):
    cfg = SearchConfig(space="nb201", strategy=strategy, budget=kw.pop("budget", 12), proxies=TOPOLOGY,
                       **{**SMALL, **kw})
    return run_search(cfg, DictEvaluator(table))


# strategy -> (evaluations of a budget of 12, scores zero-shot); every registered strategy must be listed
EXPECTED = {"random": (12, False), "evolution": (12, False), "prefiltered": (12, True), "zeroshot": (1, True)}


def test_every_registered_strategy_has_its_expectations():
    assert sorted(EXPECTED) == list_strategies()


@pytest.mark.parametrize("strategy", list_strategies())
def test_each_strategy_spends_its_budget_deterministically(strategy, table, space):
    res = run(strategy, table, seed=3)
    traj = res["trajectory"]
    evaluations, scores = EXPECTED[strategy]
    assert len(traj) == evaluations
    keys = {space.format(space.canonical_codes(space.parse(r["arch"])[None])[0]) for r in traj}
    assert len(keys) == len(traj)                                    # never evaluates an isomorph twice
    assert all(r["accuracy"] == table[r["arch"]] for r in traj)
    assert res["best"]["accuracy"] == max(r["accuracy"] for r in traj)
    assert [r["best"] for r in traj] == list(np.maximum.accumulate([r["accuracy"] for r in traj]))
    assert run(strategy, table, seed=3)["trajectory"] == traj
    assert run(strategy, table, seed=4)["trajectory"] != traj
    assert (res["scored"] > 0) == scores


def test_prefilter_helps_when_the_proxies_agree_with_accuracy(table):
    """The synthetic accuracy rises with size, as the topology proxies do: the pre-filtered search must
    beat random search and plain evolution at the same budget on every seed pair."""
    for seed in range(2):
        pre = run("prefiltered", table, seed=seed)["best"]["accuracy"]
        assert pre > run("random", table, seed=seed)["best"]["accuracy"]
        assert pre >= run("evolution", table, seed=seed)["best"]["accuracy"]


@pytest.mark.parametrize("strategy", list_strategies())
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
    with ResultStore(db, space="nb201") as store:
        rows = store.candidates(res["run_id"])
        assert rows and all(r["latency_ms"] <= limit for r in rows)      # nothing over it scored or trained
        evaluated = {r["arch"] for r in store.candidates(res["run_id"], "evaluated")}
        assert evaluated == {r["arch"] for r in res["trajectory"]}
        assert (len(rows) > len(evaluated)) == EXPECTED[strategy][1]     # the rest: scored, not evaluated
        assert store.run_summary(res["run_id"])["best"]["arch"] == res["best"]["arch"]


def test_impossible_constraint_and_unknown_strategy(table):
    with pytest.raises(InfeasibleError, match=r"the tightest is max_latency_ms 1e-06, which removed") as e:
        run("random", table, max_latency_ms=1e-6)
    assert e.value.param == "max_latency_ms"
    with pytest.raises(UnknownNameError, match="unknown strategy 'bayes'; choose from " + ", ".join(list_strategies())):
        run("bayes", table)
    for name, value in (("budget", 0), ("population", 0), ("sample", 5), ("parallel", -1)):
        with pytest.raises(ParameterError, match=name) as e:
            run("random", table, **{name: value})
        assert e.value.param == name


@pytest.mark.parametrize("strategy", list_strategies())
def test_partial_oracle_restricts_the_search(strategy, table):
    some = dict(list(table.items())[::10])
    res = run(strategy, some, budget=6)
    assert res["trajectory"] and all(r["arch"] in some for r in res["trajectory"])


def test_a_bug_inside_is_not_a_user_error(table):
    """An evaluator failing with a KeyError (here: it claims to cover what it lacks) stays a KeyError."""
    class Broken(DictEvaluator):
        def covers(self, archs):
            return np.ones(len(archs), dtype=bool)
    with pytest.raises(KeyError) as e:
        run_search(SearchConfig(space="nb201", strategy="random", budget=3, proxies=TOPOLOGY),
                   Broken(dict(list(table.items())[:1])))
    assert not isinstance(e.value, Error)


def test_prefilter_with_a_network_proxy(tmp_path):
    tiny = get_space("nb201", channels=4, cells=1, resolution=8)
    table = {a: float(len(a)) for a in tiny.sample(400, seed=0)}
    cfg = SearchConfig(space="nb201", space_options=dict(channels=4, cells=1, resolution=8), strategy="prefiltered",
                       budget=4, proxies=("live_macs", "synflow"), population=2, sample=2, children=6, pool=30)
    res = run_search(cfg, DictEvaluator(table), db=str(tmp_path / "n.db"))
    with ResultStore(str(tmp_path / "n.db"), space="nb201") as store:
        scored = store.candidates(res["run_id"], has="synflow")
    # only the best network_per_kept x kept by the topology proxies pay for the network proxy
    assert 0 < len(scored) <= 4 * 2 + 4 * (4 - 2)


def test_oracle_file_errors(tmp_path, space):
    bad = tmp_path / "o.csv"
    bad.write_text("name,acc\nx,1\n")
    with pytest.raises(DataError, match="has no column 'arch' or 'arch_str'; its columns: name, acc"):
        OracleEvaluator(str(bad), "acc", space)
    bad.write_text("arch,acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|,1\n|x|,2\n")
    with pytest.raises(DataError, match="line 3"):
        OracleEvaluator(str(bad), "acc", space)
    bad.write_text("arch,acc\n|none~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    with pytest.raises(DataError, match="line 2: fewer fields"):
        OracleEvaluator(str(bad), "acc", space)
    with pytest.raises(DataError, match="has no column 'top1'"):
        OracleEvaluator(str(bad), "top1", space)
    with pytest.raises(ParameterError, match="column must be the oracle's column.* has acc$") as e:
        OracleEvaluator(str(bad), None, space)
    assert e.value.param == "column"


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
    (["--strategy", "random", "--oracle", "O"], "--column must be the oracle's column"),
    (["--strategy", "random", "--oracle", "O", "--column", "top1"], "has no column 'top1'"),
    (["--strategy", "random"], "--data must be a training set"),
    (["--strategy", "random", "--oracle", "O", "--column", "acc", "--device", "nope"], "nope"),
    (["--strategy", "random", "--oracle", "O", "--column", "acc", "--proxies", "magic"], "unknown proxy 'magic'"),
    (["--strategy", "random", "--oracle", "O", "--column", "acc", "--max-latency-ms", "0.000001"],
     "relax --max-latency-ms"),
    (["--strategy", "prefiltered", "--oracle", "O", "--column", "acc", "--cheap", "synflow"], "topology proxy"),
    (["--strategy", "random", "--oracle", "O", "--column", "acc", "--population", "0"], "--population must be"),
    (["--strategy", "random", "--oracle", "O", "--column", "acc", "--workers", "-2"], "--workers must be"),
    (["--strategy", "prefiltered", "--oracle", "O", "--column", "acc", "--tournament", "-1"], "--tournament must be"),
    (["--strategy", "prefiltered", "--oracle", "O", "--column", "acc", "--cheap-tournament", "-2"],
     "--cheap-tournament must be"),
])
def test_cli_bad_input_one_line_exit_2(extra, message, oracle_csv, capsys):
    argv = ["search", "nb201", "--budget", "3"] + [oracle_csv if a == "O" else a for a in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


def test_training_evaluator_needs_data():
    with pytest.raises(ParameterError, match="data must be a training set") as e:
        TrainingEvaluator("nb201", {}, None, {})
    assert e.value.param == "data"



# ------------------------------------------------------------------ the shared aging evolution
def counter(n):
    """A ``generation`` callable: one child per generation for ``n`` generations."""
    left = iter(range(n))
    return lambda: 0 if next(left, None) is None else 1


def evolve(seed, generations=30, size=5, sample=2):
    rng = np.random.default_rng(seed)
    return aging_evolution(range(size), evaluate=list, fitness=lambda members: [-abs(m - 40) for m in members],
                           propose=lambda parent, _: parent + int(rng.integers(-3, 4)), rng=rng, size=size,
                           sample=sample, generation=counter(generations))


def test_evolution_is_deterministic_for_a_seed():
    assert list(evolve(0)) == list(evolve(0))
    assert list(evolve(0)) != list(evolve(1))


def test_aging_removes_the_oldest_whatever_its_fitness():
    born = []

    def propose(parent, siblings):
        born.append(100 + len(born))                 # every child fitter than any member
        return born[-1]
    final = aging_evolution([1000, 0, 1], evaluate=list, fitness=lambda members: members, propose=propose,
                            rng=np.random.default_rng(0), size=3, sample=3, generation=counter(2))
    # the fittest initial member (1000) was the oldest: it died first, before the less fit 0 and 1
    assert list(final) == [1, 100, 101] and isinstance(final, deque)


def test_tournament_picks_the_fittest_of_its_sample():
    fitness = [5, 1, 9, 3, 7, 2]
    for seed in range(20):
        drawn = np.random.default_rng(seed).choice(len(fitness), size=3, replace=False)
        assert tournament(fitness, 3, np.random.default_rng(seed)) == max(drawn, key=lambda i: fitness[i])
    assert tournament(fitness, 10, np.random.default_rng(0)) == 2         # a sample above the size: all


def test_a_generation_without_children_ends_the_evolution():
    calls = []
    final = aging_evolution([1, 2], evaluate=list, fitness=list, propose=lambda parent, _: calls.append(parent),
                            rng=np.random.default_rng(0), size=2, sample=1, generation=counter(5))
    assert list(final) == [1, 2] and len(calls) == 1


# ------------------------------------------------------------------ the Python entry point
def test_search_from_python_matches_the_command_line(oracle_csv, table, capsys, tmp_path):
    kw = dict(strategy="prefiltered", budget=8, oracle=oracle_csv, column="acc", seed=2, proxies=TOPOLOGY,
              population=4, sample=2, children=8, pool=100)
    r = search("nb201", **kw)
    assert len(r.trajectory) == r.evaluations == 8 and r.run_id is None           # in memory
    assert r.accuracy == table[r.arch] == r.trajectory["accuracy"].max() and r.scored > 0
    assert list(r.trajectory["arch"]) == [row["arch"] for row in r.trajectory]
    lat = r.front["latency_ms"]
    assert list(lat) == sorted(lat) and np.all(np.diff(r.front["accuracy"]) > 0)
    assert main(["search", "nb201", "--strategy", "prefiltered", "--budget", "8", "--oracle", oracle_csv,
                 "--column", "acc", "--seed", "2", "--proxies", ",".join(TOPOLOGY), "--population", "4",
                 "--sample", "2", "--children", "8", "--pool", "100"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"best {r.arch} accuracy {r.accuracy:.3f} latency_ms {r.latency_ms:.4f}")
    db = str(tmp_path / "api.db")
    recorded = search(get_space("nb201"), db=db, **kw)
    assert recorded.run_id is not None and recorded.best == r.best
    with ResultStore(db, space="nb201") as store:
        assert store.run_summary(recorded.run_id)["best"] == r.best


def test_search_from_python_trains_on_an_array_pair():
    rng = np.random.default_rng(0)
    data = (rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), rng.integers(0, 3, 16))
    r = search("nb201", strategy="random", budget=1, data=data, space_options={"classes": 3}, proxies=TOPOLOGY,
               train={"epochs": 1, "max_steps": 1, "batch_size": 8})
    assert r.evaluations == 1 and 0 <= r.accuracy <= 100 and r.best["params"] > 0


def test_search_from_python_names_its_parameters(oracle_csv):
    for kw, param in (({"budget": 0}, "budget"), ({"population": 2, "sample": 3}, "sample"),
                      ({"cheap": "synflow"}, "cheap"), ({"data": 3}, "data"),
                      ({"max_latency_ms": 1e-9}, "max_latency_ms"), ({"max_params": "1e6"}, "max_params")):
        with pytest.raises(ParameterError) as e:
            search("nb201", strategy="random", oracle=oracle_csv, column="acc", proxies=TOPOLOGY, **kw)
        assert e.value.param == param and "--" not in str(e.value)
    with pytest.raises(TypeError, match="unexpected keyword argument 'populaton'"):
        search("nb201", oracle=oracle_csv, column="acc", populaton=3)
    with pytest.raises(ParameterError, match="space_options"):
        search(get_space("nb201"), oracle=oracle_csv, column="acc", space_options={"classes": 3})


# ------------------------------------------------------------------ refine's parameters
def test_refine_names_its_parameters(capsys):
    from zeroshot.refine import refine
    from zeroshot.spaces.baselines import get_baseline
    mbv2 = get_space("mbv2")
    base, dev = mbv2.parse(get_baseline("mbv2", "mobilenetv2")), load_device("mobile-npu-16")
    for kw, param in (({"budget": 0}, "budget"), ({"proxy_resolution": 10}, "proxy_resolution"),
                      ({"dims": ("channels",)}, "dims"), ({"dims": "fusion"}, "dims")):
        with pytest.raises(ParameterError) as e:
            refine(mbv2, base, **{"dims": ("fusion",), "device": dev, **kw})
        assert e.value.param == param
    assert main(["refine", "mbv2", "mobilenetv2", "--search", "fusion", "--proxy-resolution", "10"]) == 2
    assert capsys.readouterr().err.strip().endswith("--proxy-resolution must be 32..4096 pixels, got 10; try 128")


def test_population_defaults_to_the_strategys_own(table):
    """``population=None`` (the default) is 5 for the pre-filtered strategies, 10 for plain evolution."""
    def traj(strategy, **kw):
        cfg = SearchConfig(space="nb201", strategy=strategy, budget=14, proxies=TOPOLOGY, seed=1, pool=100, **kw)
        return run_search(cfg, DictEvaluator(table))["trajectory"]
    assert traj("prefiltered") == traj("prefiltered", population=5) != traj("prefiltered", population=10)
    assert traj("evolution") == traj("evolution", population=10) != traj("evolution", population=5)


def test_seeds_vary_the_cells_trained(table, space):
    """The seed draws the warm-up's pool and the mutations: seeds start from different warm-ups (the best
    by score of different pools) and no two train the same cells."""
    def trained(seed):
        traj = run("prefiltered", table, seed=seed, budget=20)["trajectory"]
        return [space.format(space.canonical_codes(space.parse(r["arch"])[None])[0]) for r in traj]
    runs = [trained(seed) for seed in range(4)]
    warm = [set(r[:SMALL["population"]]) for r in runs]
    assert max(len(a & b) for i, a in enumerate(warm) for b in warm[i + 1:]) <= 1
    assert len({frozenset(r) for r in runs}) == len(runs)
