"""Decomposition of architectures into kernels: fused groups of ops that a device runs as one.

A kernel starts at a *head* op (conv, add, pool, linear, ...) and absorbs the ops that follow it in a
chain when the device fuses that pair (``conv+bn``, ``conv+act``, ``add+act`` ...) and the absorbed op is
the only reader of the chain so far.  Each kernel gets a type and the features cost models use: shapes,
MACs, elements read / written, weight elements, and the fused activation.

Example
-------
>>> from zeroshot.spaces import get_space, to_table
>>> space = get_space("nb201")
>>> kt = decompose(to_table([space.to_ir(space.sample(1)[0])]))
>>> KERNEL_TYPES[kt.cols["type"][0]]
'conv'
>>> kt.sum_per_arch(kt.cols["n_ops"]).tolist() == [len(space.to_ir(space.sample(1)[0]).ops)]
True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zeroshot.spaces import ir
from zeroshot.spaces.ir import OpTable

__all__ = ["DEFAULT_FUSION", "FUSION_FOLLOWERS", "FUSION_HEADS", "KERNEL_FIELDS", "KERNEL_TYPES", "KT", "KernelTable",
           "decompose", "parse_fusion"]

KERNEL_TYPES = ("conv", "dwconv", "gconv", "bn", "act", "add", "mul", "pool", "gap", "linear", "zero",
                "upsample", "concat", "shuffle")
KT = {name: i for i, name in enumerate(KERNEL_TYPES)}

#: Fusion pairs (kernel head kind, follower op kind) most accelerators and runtimes fuse.
DEFAULT_FUSION = ("conv+bn", "conv+act", "bn+act", "add+act", "linear+act")
#: the op kinds a fusion rule may name: the followers a kernel absorbs, and the heads that absorb them
FUSION_FOLLOWERS = {"bn": ir.BN, "act": ir.ACT}
FUSION_HEADS = {"conv": (ir.CONV, ir.DECONV), "bn": (ir.BN,), "add": (ir.ADD,), "linear": (ir.LINEAR,),
                "pool": (ir.AVGPOOL, ir.MAXPOOL), "mul": (ir.MUL,)}

KERNEL_FIELDS = ("type", "c_in", "c_out", "h_in", "w_in", "h_out", "w_out", "k", "stride", "groups",
                 "macs", "in_elems", "out_elems", "weight_elems", "act", "n_ops")


@dataclass
class KernelTable:
    """Kernels of a batch of architectures; ``ptr[a]:ptr[a+1]`` are architecture ``a``'s kernels and
    ``op_kernel[r]`` is the kernel (global row) each op row of the source table belongs to."""

    ptr: np.ndarray
    cols: dict
    op_kernel: np.ndarray

    def __len__(self) -> int:
        return len(self.ptr) - 1

    @property
    def arch_of(self) -> np.ndarray:
        """The architecture (index) of every kernel row."""
        return np.repeat(np.arange(len(self)), np.diff(self.ptr))

    def sum_per_arch(self, per_kernel: np.ndarray) -> np.ndarray:
        """Per-architecture sums of a value of every kernel row (0 for an architecture without kernels,
        which ``np.add.reduceat`` would mishandle)."""
        return np.bincount(self.arch_of, weights=per_kernel, minlength=len(self))


def parse_fusion(rules) -> tuple[str, ...]:
    """Validate fusion rules given as ``"head+follower"`` strings."""
    out = []
    for rule in rules:
        head, _, follower = str(rule).partition("+")
        if head not in FUSION_HEADS or follower not in FUSION_FOLLOWERS:
            raise ValueError(f"fusion rule {rule!r} must be HEAD+FOLLOWER with HEAD in "
                             f"{', '.join(FUSION_HEADS)} and FOLLOWER in {', '.join(FUSION_FOLLOWERS)}")
        out.append(f"{head}+{follower}")
    return tuple(out)


def decompose(table: OpTable, fusion=DEFAULT_FUSION) -> KernelTable:
    """Group the op rows of ``table`` into kernels under the ``fusion`` rules (vectorised)."""
    c = table.cols
    n = len(c["kind"])
    kind = c["kind"]
    arch_of = np.repeat(np.arange(len(table)), np.diff(table.ptr))
    gsrc = np.where(c["src"] >= 0, c["src"] + table.ptr[arch_of], -1)
    single_input = np.ones(n, bool)
    single_input[(kind == ir.ADD) | (kind == ir.MUL) | (kind == ir.CONCAT)] = False
    # A follower may join its producer's kernel when the producer's output has it as only reader.
    prod = np.where(gsrc >= 0, gsrc, 0)
    sole_reader = (gsrc >= 0) & (c["n_readers"][prod] == 1) & single_input
    head = np.arange(n)
    rules = [r.split("+") for r in parse_fusion(fusion)]
    for _ in range(4):                       # one more link per pass: conv -> bn -> act
        hk = kind[head[prod]]
        fuse = np.zeros(n, bool)
        for h, f in rules:
            fuse |= (kind == FUSION_FOLLOWERS[f]) & np.isin(hk, FUSION_HEADS[h])
        fuse &= sole_reader
        new_head = np.where(fuse, head[prod], np.arange(n))
        if np.array_equal(new_head, head):
            break
        head = new_head
    is_head = head == np.arange(n)
    rows = np.flatnonzero(is_head)
    kid = np.cumsum(is_head) - 1                      # kernel index of each head row
    op_kernel = kid[head]
    # per-kernel features from the head row; tails contribute their activation and op count (a kernel
    # headed by an activation keeps its own)
    ktype = _kernel_type(c, rows)
    act = np.zeros(len(rows), np.int64)
    acts = np.flatnonzero(kind == ir.ACT)
    act[op_kernel[acts]] = c["act"][acts]
    n_ops = np.bincount(op_kernel, minlength=len(rows)).astype(np.int64)
    # the kernel's output is the last op of its chain
    last = np.zeros(len(rows), np.int64)
    np.maximum.at(last, op_kernel, np.arange(n))
    cin, cout = c["c_in"][rows], c["c_out"][rows]
    g, k = c["groups"][rows], c["k"][rows]
    hin, win, hout, wout = c["h_in"][rows], c["w_in"][rows], c["h_out"][rows], c["w_out"][rows]
    is_conv = kind[rows] == ir.CONV
    is_deconv = kind[rows] == ir.DECONV
    is_lin = kind[rows] == ir.LINEAR
    weight = (np.where(is_conv | is_deconv, cout * (cin // np.maximum(g, 1)) * k * c["kw"][rows], 0)
              + np.where(is_lin, cin * cout, 0))
    macs = (np.where(is_conv, weight * hout * wout, 0) + np.where(is_deconv, weight * hin * win, 0)
            + np.where(is_lin, cin * cout, 0))
    n_in = np.where(np.isin(kind[rows], (ir.ADD, ir.MUL)), 2, 1)
    cols = {
        "type": ktype, "c_in": cin, "c_out": cout, "h_in": hin, "w_in": win, "h_out": hout, "w_out": wout,
        "k": k, "stride": c["stride"][rows], "groups": g, "macs": macs,
        "in_elems": cin * hin * win * np.where(kind[rows] == ir.CONCAT, 1, n_in),
        "out_elems": c["c_out"][last] * c["h_out"][last] * c["w_out"][last],
        "weight_elems": weight, "act": act, "n_ops": n_ops,
    }
    kptr = np.concatenate([[0], np.cumsum(np.bincount(arch_of[rows], minlength=len(table)))]).astype(np.int64)
    return KernelTable(kptr, {f: np.ascontiguousarray(cols[f], dtype=np.int64) for f in KERNEL_FIELDS},
                       op_kernel.astype(np.int64))


def _kernel_type(c, rows) -> np.ndarray:
    """Kernel type of every head row: a transposed conv is a conv kernel (its MACs, its weights), the
    activations beyond relu / relu6 / hswish / sigmoid are ``act`` kernels."""
    kind = c["kind"][rows]
    t = np.full(len(rows), KT["zero"], np.int64)
    conv = (kind == ir.CONV) | (kind == ir.DECONV)
    dw = conv & (c["groups"][rows] == c["c_in"][rows]) & (c["groups"][rows] > 1)
    t[conv] = KT["gconv"]
    t[conv & (c["groups"][rows] == 1)] = KT["conv"]
    t[dw] = KT["dwconv"]
    for k_ir, name in ((ir.BN, "bn"), (ir.ACT, "act"), (ir.ADD, "add"), (ir.MUL, "mul"),
                       (ir.AVGPOOL, "pool"), (ir.MAXPOOL, "pool"), (ir.GAP, "gap"), (ir.LINEAR, "linear"),
                       (ir.UPSAMPLE, "upsample"), (ir.CONCAT, "concat"), (ir.ZERO, "zero"),
                       (ir.SHUFFLE, "shuffle")):
        t[kind == k_ir] = KT[name]
    return t
