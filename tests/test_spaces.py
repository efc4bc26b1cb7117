"""Every registered space: the IR, the builder, exact counts and clean parse errors (sampling, encodings,
mutation and crossover of every registered space: tests/test_registry.py)."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zeroshot.estimator.counts import analytic_counts
from zeroshot.spaces import EncodingError, get_space, list_spaces
from zeroshot.spaces.builder import build, count_parameters
from zeroshot.spaces.ir import to_table

SPACES = list_spaces()


def reference_peak(arch) -> int:
    """Liveness peak (elements) computed the slow, obvious way."""
    n = len(arch.ops)
    last = {0: 0}
    for i, op in enumerate(arch.ops):
        last.setdefault(i + 1, i)
        for t in op.inputs:
            last[t] = i
    for t in arch.outputs:
        last[t] = n
    size = {0: int(np.prod(arch.input_shape))}
    for i, op in enumerate(arch.ops):
        size[i + 1] = op.c_out * op.h_out * op.w_out
    best = 0
    for step in range(n):
        live = sum(size[t] for t in range(step + 2) if t <= step + 1 and last[t] >= step
                   and (t == 0 or t - 1 <= step))
        best = max(best, live)
    return best


@pytest.fixture(params=SPACES)
def space(request):
    return get_space(request.param)


def test_build_forward_shape(space):
    arch = space.to_ir(space.sample(1, seed=0)[0])
    net = build(arch).eval()
    c, h, w = arch.input_shape
    with torch.no_grad():
        out = net(torch.randn(2, c, h, w))
    outs = out if isinstance(out, tuple) else (out,)
    for t, o in zip(arch.outputs, outs):
        assert tuple(o.shape[1:2]) == (arch.tensor_shape(t)[0],)
        assert o.shape[0] == 2


def test_analytic_params_equal_torch(space):
    archs = space.irs(space.sample_distinct_codes(200, np.random.default_rng(7)))
    counts = analytic_counts(archs)
    for arch, p in zip(archs, counts["params"]):
        assert p == arch.params == count_parameters(build(arch))


def test_kernel_counts_equal_python_reference(space):
    archs = space.irs(space.sample_distinct_codes(20, np.random.default_rng(1)))
    counts = analytic_counts(archs)
    assert counts["macs"].tolist() == [a.macs for a in archs]
    assert counts["peak_activation_bytes"].tolist() == [4 * reference_peak(a) for a in archs]
    half = analytic_counts(archs, precision="fp16")["peak_activation_bytes"]
    assert np.array_equal(2 * half, counts["peak_activation_bytes"])


def test_table_batch_equals_one_by_one(space):
    archs = space.irs(space.sample_distinct_codes(5, np.random.default_rng(2)))
    batch = analytic_counts(archs)
    for i, a in enumerate(archs):
        one = analytic_counts([a])
        assert all(one[k][0] == batch[k][i] for k in batch)
    assert len(to_table(archs)) == 5


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=80))
def test_arbitrary_text_is_rejected_cleanly(name, text):
    space = get_space(name)
    try:
        codes = space.parse(text)
    except EncodingError as e:
        assert str(e)                      # a message, never another exception type
    else:                                  # whatever parses is canonical and builds
        space.to_ir(codes)


@pytest.mark.parametrize("name", SPACES)
def test_mutated_encodings_are_rejected(name):
    space = get_space(name)
    text = space.sample(1, seed=0)[0]
    for bad in (text[: len(text) // 2], text + " x", text.replace(text[len(text) // 2], "?", 1), ""):
        with pytest.raises(EncodingError):
            space.parse(bad)


@pytest.mark.parametrize("k, stride, pad, include", [(3, 1, 1, False), (3, 1, 1, True), (2, 2, 0, True),
                                                     (3, 2, 1, False), (5, 1, 2, False)])
def test_builder_avg_pool_equals_torch(k, stride, pad, include):
    from zeroshot.spaces.builder import AvgPool
    pool = AvgPool(4, k, stride, pad, include)
    ref = torch.nn.AvgPool2d(k, stride, pad, count_include_pad=include)
    for shape, dtype in [((2, 4, 9, 9), torch.float32), ((3, 4, 8, 6), torch.float64)]:
        x = torch.randn(*shape, dtype=dtype, requires_grad=True)
        pool = pool.to(dtype)
        out, want = pool(x), ref(x)
        assert out.shape == want.shape
        torch.testing.assert_close(out, want)
        g = torch.randn_like(want)
        torch.testing.assert_close(torch.autograd.grad(out, x, g)[0], torch.autograd.grad(want, x, g)[0])
    assert not pool.state_dict()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)            # a float32 module takes float64 input too
    torch.testing.assert_close(AvgPool(4, k, stride, pad, include)(x), ref(x))
