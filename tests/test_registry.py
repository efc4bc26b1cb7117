"""Every registry and every registered item, read from the registries at collection time (a newly registered
space, proxy, device, rewrite or baseline is tested without touching this file), and the package's import
graph (no cycle at module level: built-ins register through the registries' lazy ``builtins``)."""
import ast
import importlib
import inspect
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from zeroshot.errors import ParameterError, UnknownNameError
from zeroshot.estimator.devices import Device, DeviceError, device_from_dict, list_devices, load_device
from zeroshot.proxies import KINDS, NEEDS, get_proxy, list_proxies
from zeroshot.registry import Registry
from zeroshot.scoring import log_ranks
from zeroshot.spaces import (OPTION_ALIASES, SPACES, SpaceOptionError, get_space, list_space_options, list_spaces,
                             register_space, to_table)
from zeroshot.spaces.baselines import BASELINES, get_baseline, list_baselines
from zeroshot.spaces.nb201 import Nb201Space
from zeroshot.spaces.rewrites import REWRITES, RewriteError, apply_steps, list_rewrites

ROOT = Path(__file__).resolve().parents[1]
#: import name -> folder (setup.py's PACKAGE_DIR)
PACKAGES = {"zeroshot": ROOT / "zeroshot", "zeroshot.spaces": ROOT / "spaces", "zeroshot.estimator": ROOT / "estimator"}


# ---------------------------------------------------------------- the package's modules and registries

def package_modules() -> dict[str, Path]:
    """Import name -> file of every module of the package (compiled extensions included, as leaves)."""
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*"):
            if path.suffix not in (".py", ".so", ".pyd") or "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(folder).parent.parts) + [path.name.split(".")[0]]
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join([package, *parts])] = path
    return out


MODULES = package_modules()


def registries() -> dict[str, tuple[str, Registry]]:
    """``module.NAME`` -> (module, registry) of every module-level ``NAME = Registry(...)`` of the package."""
    found = {}
    for module, path in sorted(MODULES.items()):
        if path.suffix != ".py":
            continue
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Registry":
                target = (node.targets[0] if isinstance(node, ast.Assign) else node.target).id
                found[f"{module}.{target}"] = (module, getattr(importlib.import_module(module), target))
    return found


REGISTRIES = registries()


def home(obj) -> str:
    """The module that defines a registered object (a proxy's function, a class)."""
    return getattr(obj, "fn", obj).__module__


# ---------------------------------------------------------------- import graph

def module_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported: not those in functions, nor under
    ``if TYPE_CHECKING``."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
        else:
            stack.extend(c for c in ast.iter_child_nodes(node) if isinstance(c, (ast.stmt, ast.excepthandler)))


def imported_modules(module: str, path: Path, node) -> list[str]:
    """The modules of the package an import statement needs: ``from P import name`` needs ``P.name`` when it
    is a module, else ``P`` itself (the name must exist in it by then)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        graph[module] = set()
        if path.suffix == ".py":
            for node in module_level_imports(ast.parse(path.read_text())):
                graph[module] |= {m for m in imported_modules(module, path, node) if m in MODULES and m != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        state[m] = "done"
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_no_import_cycle_at_module_level():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    tree = ast.parse("import os\nfrom . import x\ndef f():\n    import y\nclass C:\n    from .z import w\n"
                     "try:\n    import t\nexcept ImportError:\n    import u\n")
    assert sorted(ast.unparse(n) for n in module_level_imports(tree)) == [
        "from . import x", "from .z import w", "import os", "import t", "import u"]


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert {"zeroshot.spaces.nb201", "zeroshot.estimator.devices", "zeroshot.proxies.network"} <= set(graph)
    assert "zeroshot.spaces" in graph["zeroshot.spaces.nb201"]             # from . import register_space
    assert "zeroshot.spaces.nb201" not in graph["zeroshot.spaces"]          # registered lazily


# ---------------------------------------------------------------- every registry

def test_the_package_has_its_registries():
    kinds = {registry.kind for _, registry in REGISTRIES.values()}
    assert {"space", "device", "device kind", "proxy", "rewrite", "baseline", "strategy"} <= kinds


@pytest.mark.parametrize("where", sorted(REGISTRIES))
def test_unknown_names_raise_one_error_listing_the_choices(where):
    registry = REGISTRIES[where][1]
    names = registry.names()
    assert names and names == sorted(names)
    with pytest.raises(UnknownNameError) as err:
        registry.get("no-such-name")
    assert isinstance(err.value, KeyError) and str(err.value).startswith(f"unknown {registry.kind} 'no-such-name'; "
                                                                        f"choose from {', '.join(names)}")


@pytest.mark.parametrize("where", sorted(w for w, (_, r) in REGISTRIES.items() if r.builtins))
def test_builtins_are_the_modules_that_register(where):
    """Every built-in module registers something, and every registered item comes from a built-in module
    or the registry's own (a module that registers but is not listed would be missed until imported)."""
    module, registry = REGISTRIES[where]
    for name in MODULES:                 # import everything that can be, so that every registration happened
        if not name.endswith("__main__"):
            try:
                importlib.import_module(name)
            except ImportError:
                pass
    homes = {home(obj) for _, obj in registry.items()}
    assert set(registry.builtins) <= homes, f"built-ins registering nothing: {set(registry.builtins) - homes}"
    assert homes <= set(registry.builtins) | {module}, f"unlisted: {homes - set(registry.builtins) - {module}}"


def test_a_failed_builtin_import_is_raised_again():
    registry = Registry("thing", builtins=("zeroshot.no_such_module",))
    for _ in range(2):
        with pytest.raises(ModuleNotFoundError):
            registry.names()


# ---------------------------------------------------------------- spaces

@pytest.fixture(params=list_spaces())
def space(request):
    return get_space(request.param)


def test_space_is_registered_under_its_name(space):
    assert type(space) is SPACES.get(space.name)


def test_space_sampling_is_seeded_and_distinct(space):
    a = space.sample(50, seed=3)
    assert len(set(a)) == 50
    assert a == space.sample(50, seed=3)
    assert a != space.sample(50, seed=4)


def test_space_samples_parse_back(space):
    for text in space.sample(30, seed=0):
        codes = space.parse(text)
        assert codes.dtype == np.int64 and codes.shape == (space.code_length,)
        assert space.format(codes) == text
        assert np.array_equal(space.parse(space.format(codes)), codes)


def assert_member(space, text: str) -> None:
    """``text`` is a canonical encoding of ``space`` that builds, and a member of what the space samples
    (where the space can tell: curated spaces have ``contains``)."""
    codes = space.parse(text)
    assert space.format(codes) == text and space.to_ir(codes).ops
    if hasattr(space, "contains"):
        assert space.contains(codes), text


def assert_inherited(space, child: str, a: str, b: str) -> None:
    """Every choice of ``child`` is the same choice of parent ``a`` or ``b``: each code position of a product
    space; the resolution, stem, head, stage depths, block types / kernels / expansions and stage widths of
    a stage space (mbv2)."""
    ca, cb, cc = space.parse(a), space.parse(b), space.parse(child)
    if not hasattr(space, "decode"):
        assert np.all((cc == ca) | (cc == cb)), (child, a, b)
        return
    pa, pb, pc = space.decode(ca), space.decode(cb), space.decode(cc)
    for i in range(3):                                                  # resolution, stem, head
        assert pc[i] in (pa[i], pb[i])
    for sa, sb, sc in zip(pa[3], pb[3], pc[3]):
        assert len(sc) in (len(sa), len(sb))
        for j, block in enumerate(sc):
            assert block[:3] in [s[j][:3] for s in (sa, sb) if j < len(s)]
        assert {blk[3] for blk in sc} <= {blk[3] for blk in sa + sb}


def test_space_mutation_and_crossover_give_members(space):
    a, b = space.sample(2, seed=1)
    children = set()
    for seed in range(10):
        m = space.mutate(a, seed=seed)
        assert m != a
        assert_member(space, m)
        child = space.crossover(a, b, seed=seed)
        assert_member(space, child)
        assert_inherited(space, child, a, b)
        assert space.crossover(a, a, seed=seed) == a                  # nothing to take from elsewhere
        children.add(child)
    assert children - {a, b}, "crossover never mixed its parents"


@pytest.mark.parametrize("name", list_spaces())
def test_space_takes_the_options_it_lists(name):
    """Each listed option, given its default, builds the default space; each alias names a listed option."""
    params = inspect.signature(SPACES.get(name).__init__).parameters
    default = get_space(name).sample(3, seed=0)
    for option in list_space_options(name):
        assert get_space(name, **{option: params[option].default}).sample(3, seed=0) == default
    assert set(OPTION_ALIASES.get(name, {}).values()) <= set(list_space_options(name))
    assert set(OPTION_ALIASES) <= set(list_spaces())


@pytest.mark.parametrize("name", list_spaces())
def test_space_refuses_an_option_it_does_not_take(name):
    with pytest.raises(SpaceOptionError) as err:
        get_space(name, colour="red")
    assert err.value.param == "colour" and list(err.value.accepted) == list_space_options(name)
    assert str(err.value).startswith(f"space {name!r} does not take colour; it takes ")
    assert err.value.message_for("--colour").startswith(f"space {name!r} does not take --colour")


def test_mbv2_takes_p_for_parallelism():
    assert get_space("mbv2", P=32).parallelism == 32 == get_space("mbv2", parallelism=32).parallelism
    with pytest.raises(ParameterError, match="P must be omitted when parallelism is given"):
        get_space("mbv2", P=16, parallelism=16)
    with pytest.raises(SpaceOptionError, match=r"it takes parallelism \(or P\), classes"):
        get_space("mbv2", p=16)
    with pytest.raises(SpaceOptionError, match="does not take P"):
        get_space("nb201", P=16)


def test_a_type_error_inside_a_space_stays_a_bug(monkeypatch):
    class Broken(Nb201Space):
        name = "broken"

        def __init__(self, classes: int = 10):
            super().__init__(classes=classes, colour="red")          # a bug: TypeError inside

    monkeypatch.setitem(SPACES._items, "broken", Broken)
    with pytest.raises(TypeError) as err:
        get_space("broken", classes=3)
    assert not isinstance(err.value, ParameterError)
    with pytest.raises(UnknownNameError, match="unknown space 'nope'; choose from .*broken"):
        get_space("nope")


def test_register_space_refuses_a_taken_name():
    class Other(Nb201Space):
        name = "nb201"

    with pytest.raises(ValueError, match="space 'nb201' is already registered"):
        register_space(Other)


# ---------------------------------------------------------------- proxies

PROXIES = list_proxies()
TINY = get_space("nb201", channels=4, cells=1, resolution=16)
DEAD = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"     # no input path reaches the output


@pytest.fixture(scope="module")
def network_values():
    """Every network proxy on one tiny NB201 cell (16 px, 8 images), by batch: ``x`` twice with the same seed,
    other images, other labels."""
    arch = TINY.to_ir(TINY.sample(1, seed=0)[0])
    g = torch.Generator().manual_seed(0)
    x, x2 = torch.randn(8, 3, 16, 16, generator=g), torch.randn(8, 3, 16, 16, generator=g)
    y, y2 = torch.randint(0, 10, (8,), generator=g), torch.randint(0, 10, (8,), generator=g)
    from zeroshot.proxies.network import compute_network_proxies
    names = list_proxies("network")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")              # swap reads 16 samples; the batch has 8
            return {key: compute_network_proxies(arch, names, xs, ys, seed=0)
                    for key, xs, ys in (("x", x, y), ("again", x, y), ("images", x2, y), ("labels", x, y2))}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", PROXIES)
def test_proxy_declares_what_it_is(name):
    p = get_proxy(name)
    assert p.name == name and p.needs in NEEDS and p.kind in KINDS and p.description
    assert isinstance(p.higher_is_better, bool)
    assert name in list_proxies(p.kind) and name not in list_proxies(next(k for k in KINDS if k != p.kind))


@pytest.mark.parametrize("name", PROXIES)
def test_proxy_is_deterministic(name, network_values):
    if get_proxy(name).kind == "network":
        assert network_values["x"][name] == network_values["again"][name]
        return
    table = to_table(TINY.irs(TINY.sample_distinct_codes(6, np.random.default_rng(0))))
    first = get_proxy(name).fn(table)
    assert first.dtype == np.float64 and first.shape == (6,)
    np.testing.assert_array_equal(first, get_proxy(name).fn(table))
    np.testing.assert_array_equal(first[3:], get_proxy(name).fn(to_table(TINY.irs(
        TINY.sample_distinct_codes(6, np.random.default_rng(0))[3:]))))          # a batch is a set of rows


@pytest.mark.parametrize("name", [n for n in PROXIES if get_proxy(n).kind == "network"])
def test_network_proxy_reads_only_what_it_needs(name, network_values):
    """A proxy needing ``nothing`` or ``random`` input ignores the images and labels; one needing
    ``images`` ignores the labels."""
    needs, v = get_proxy(name).needs, network_values
    if needs in ("nothing", "random"):
        assert v["images"][name] == v["x"][name]
    if needs != "labels":
        assert v["labels"][name] == v["x"][name]


@pytest.mark.parametrize("name", PROXIES)
def test_proxy_nan_rule(name, recwarn):
    """NaN and the proxy's worst value rank last (tied), its best infinity first (zeroshot.scoring); a network
    proxy's non-finite value becomes its worst value; a topology proxy never gives NaN or a best infinity,
    even on a cell whose output no input reaches."""
    p = get_proxy(name)
    worst = -math.inf if p.higher_is_better else math.inf
    ranks = log_ranks(name, np.array([1.0, math.nan, worst, 2.0, -worst]))
    assert ranks[1] == ranks[2] < min(ranks[0], ranks[3]) and ranks[4] == 0.0
    if p.kind == "network":
        from zeroshot.proxies.network import _apply_nonfinite_rule
        assert _apply_nonfinite_rule({name: math.nan}) == {name: worst}
    else:
        values = p.fn(to_table([TINY.to_ir(DEAD), TINY.to_ir(TINY.sample(1, seed=0)[0])]))
        assert not np.isnan(values).any() and not np.isin(values, [-worst]).any()


# ---------------------------------------------------------------- devices

@pytest.fixture(scope="module")
def cost_tables():
    tables = []
    for name, n in (("nb201", 4), ("mbv2", 2)):
        space = get_space(name)
        tables.append(to_table(space.irs(space.sample_distinct_codes(n, np.random.default_rng(0)))))
    return tables


@pytest.mark.parametrize("name", list_devices())
def test_device_json_round_trip(name, cost_tables, tmp_path):
    device = load_device(name)
    assert isinstance(device, Device) and load_device(device) is device
    again = device_from_dict(json.loads(json.dumps(device.to_dict())))
    assert type(again) is type(device) and again.to_dict() == device.to_dict()
    device.save(tmp_path / "d.json")
    saved = load_device(str(tmp_path / "d.json"))
    for table in cost_tables:
        np.testing.assert_array_equal(again.latency_ms(table), device.latency_ms(table))
        np.testing.assert_array_equal(saved.latency_ms(table), device.latency_ms(table))


def test_unknown_device_is_a_device_error_and_an_unknown_name():
    with pytest.raises(DeviceError) as err:
        load_device("tpu")
    assert isinstance(err.value, UnknownNameError) and "or give a device .json file" in str(err.value)
    with pytest.raises(DeviceError, match="device file nope.json does not exist"):
        load_device("nope.json")


# ---------------------------------------------------------------- rewrites and baselines

BASELINE_CASES = [(s, n, t) for s in list_spaces() for n in list_baselines(s) for t in BASELINES.get(n).encodings]


def baseline_space(space: str, task: str):
    return get_space(space, task=task) if "task" in list_space_options(space) else get_space(space)


def example_spec(name: str) -> str:
    """A spec of rewrite ``name`` giving its required parameters their help's example (``16`` of ``16 (power
    of 2)``)."""
    params = REWRITES.get(name).params
    return ":".join([name] + [f"{k}={hint.split()[0]}" for k, (_, default, hint) in params.items() if default is None])


@pytest.mark.parametrize("case", BASELINE_CASES, ids="-".join)
def test_baseline_is_a_canonical_encoding_of_its_space(case):
    space_name, name, task = case
    space = baseline_space(space_name, task)
    text = get_baseline(space_name, name, task)
    assert space.format(space.parse(text)) == text
    assert space.to_ir(text).ops


@pytest.mark.parametrize("name", list_rewrites())
def test_rewrite_applies_to_the_baselines(name):
    cases = [c for c in BASELINE_CASES if c[0] == "mbv2"]
    assert cases, "no baseline of the space rewrites work on"
    for space_name, baseline, task in cases:
        space = baseline_space(space_name, task)
        codes = space.parse(get_baseline(space_name, baseline, task))
        steps = apply_steps(space, codes, example_spec(name))
        assert [s for s, _, _ in steps][0] == "before" and steps[1][0].startswith(name + ":")
        text = space.format(steps[-1][1])
        assert np.array_equal(space.parse(text), steps[-1][1]) and space.to_ir(text).ops


@pytest.mark.parametrize("name", list_rewrites())
def test_rewrite_refuses_other_spaces(name):
    space = get_space("nb201")
    with pytest.raises(RewriteError, match="'nb201' is not one"):
        apply_steps(space, space.parse(space.sample(1, seed=0)[0]), example_spec(name))


def test_unknown_rewrite_and_baseline_errors():
    space = get_space("mbv2")
    with pytest.raises(RewriteError) as err:
        apply_steps(space, space.parse(get_baseline("mbv2", "mobilenetv2")), "shrink:m=2")
    assert isinstance(err.value, UnknownNameError)
    assert str(err.value) == f"unknown rewrite 'shrink'; choose from {', '.join(list_rewrites())}"
    with pytest.raises(UnknownNameError, match="unknown mbv2 baseline 'resnet'; choose from mobilenetv2$"):
        get_baseline("mbv2", "resnet")
    with pytest.raises(UnknownNameError, match=r"choose from \(none\); spaces with baselines: mbv2"):
        get_baseline("nb201", "mobilenetv2")
    with pytest.raises(ParameterError, match="task must be one of classify, detect, segment .*, got 'pose'"):
        get_baseline("mbv2", "mobilenetv2", "pose")
