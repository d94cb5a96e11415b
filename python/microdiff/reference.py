"""The reference PyTorch module of microdiff's residual-MLP network (docs/interop.md).

``MicrodiffMLP`` computes exactly the network microdiff trains and runs::

    h   = W_in·x + b_in  +  W_t2·silu(W_t1·sinusoidal(t) + b_t1) + b_t2  (+ E[class])
    h   = h + W_2·act(W_1·LN(h) + b_1) + b_2            × blocks
    out = W_out·act(LN(h)) + b_out

and its ``state_dict()`` names and shapes are the contract of docs/interop.md, so a model
trained here can be saved with :func:`save_safetensors` and imported by microdiff (and a
microdiff model exported to safetensors loads with ``load_state_dict``).

This module needs PyTorch (and ``safetensors`` for the save / load helpers); the rest of the
``microdiff`` Python package does not, so import it only where torch is installed.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, Mapping, Optional, Sequence, Union

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "microdiff.reference needs PyTorch (pip install torch); the rest of microdiff does not"
    ) from exc

__all__ = [
    "ACTIVATIONS",
    "FORMAT_VERSION",
    "LN_EPS",
    "MAX_PERIOD",
    "MicrodiffMLP",
    "load_safetensors",
    "save_safetensors",
    "time_frequencies",
    "time_embedding",
]

#: Max period of the sinusoidal time embedding.
MAX_PERIOD = 10000.0
#: Layer-norm ε.
LN_EPS = 1e-5
#: Version of the metadata table of docs/interop.md.
FORMAT_VERSION = "1"
#: The activations a model may use for its blocks and head (microdiff's names).
ACTIVATIONS = ("silu", "gelu_tanh", "relu")


def _f32(v: float) -> float:
    """Round a Python float to the nearest float32 (returned as a Python float).

    For +, −, ×, ÷ of float32 operands, the double result rounded once more to float32 is
    the correctly rounded float32 result, so ``_f32(a op b)`` is float32 arithmetic."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def _bits(b: int) -> float:
    """The float32 with bit pattern ``b``."""
    return struct.unpack("<f", struct.pack("<I", b))[0]


# Constants of libm's `expf` (FreeBSD's e_expf.c, as ported by Rust's `libm` crate, which
# microdiff's kernels use), as float32 values.
_LN2_HI = 6.9314575195e-01  # 0x3f317200
_LN2_LO = 1.4286067653e-06  # 0x35bfbe8e
_INV_LN2 = 1.4426950216e00  # 0x3fb8aa3b
_P1 = 1.6666625440e-1  # 0xaaaa8f.0p-26
_P2 = -2.7667332906e-3  # -0xb55215.0p-32


def _libm_expf(x: float) -> float:
    """Bit-exact ``libm::expf`` for the normal range (|x| < 87): not always correctly
    rounded (e.g. exp(−4.0295239) is 1 ulp off), and the time embedding's frequencies must
    match microdiff's bit for bit (see :func:`time_frequencies`)."""
    ln2_hi, ln2_lo, inv_ln2, p1, p2 = map(_f32, (_LN2_HI, _LN2_LO, _INV_LN2, _P1, _P2))
    x = _f32(x)
    ax = abs(x)
    if ax >= 87.0:
        raise ValueError("_libm_expf: argument out of the supported range")
    if ax > _bits(0x3EB17218):  # |x| > 0.5 ln2
        if ax > _bits(0x3F851592):  # |x| > 1.5 ln2
            k = int(_f32(_f32(inv_ln2 * x) + (0.5 if x >= 0 else -0.5)))  # truncation
        else:
            k = 1 if x >= 0 else -1
        kf = float(k)
        hi = _f32(x - _f32(kf * ln2_hi))
        lo = _f32(kf * ln2_lo)
        x = _f32(hi - lo)
    elif ax > _bits(0x39000000):  # |x| > 2^-13
        k, hi, lo = 0, x, 0.0
    else:
        return _f32(1.0 + x)
    xx = _f32(x * x)
    c = _f32(x - _f32(xx * _f32(p1 + _f32(xx * p2))))
    y = _f32(1.0 + _f32(_f32(_f32(_f32(x * c) / _f32(2.0 - c)) - lo) + hi))
    return _f32(math.ldexp(y, k))


def time_frequencies(temb: int) -> "torch.Tensor":
    """``f_i = exp(−ln(10000)·i/(temb/2))`` for ``i < temb/2``, float32.

    Evaluated exactly as microdiff's kernel does, ``expf((−logf(10000)·i) / half)`` with
    every intermediate in float32 and libm's ``expf`` (:func:`_libm_expf`), so the
    frequencies are bit-identical to microdiff's: at a time value of 999, one ulp of a
    frequency moves ``sin(t·f_i)`` by ~2e-6, more than a 1e-5 output check allows for.
    """
    if temb <= 0 or temb % 2:
        raise ValueError(f"temb must be even and > 0, got {temb}")
    half = temb // 2
    neg_log = -_f32(math.log(MAX_PERIOD))  # libm's logf(10000) is the correctly rounded one
    out = []
    for i in range(half):
        a = _f32(neg_log * float(i))  # f32 × f32 (i is exact), rounded to f32
        a = _f32(a / float(half))  # f32 / f32, rounded to f32
        out.append(_libm_expf(a))
    return torch.tensor(out, dtype=torch.float32)


def time_embedding(t: "torch.Tensor", temb: int) -> "torch.Tensor":
    """Sinusoidal embedding of the time values ``t`` (shape ``(n,)``): ``(n, temb)``,
    sines first (``sin(t·f_i)``), then cosines (``cos(t·f_i)``)."""
    freqs = time_frequencies(temb).to(device=t.device)
    a = t.to(torch.float32).reshape(-1, 1) * freqs.reshape(1, -1)
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


def _activation(act: str) -> "nn.Module":
    if act == "silu":
        return nn.SiLU()
    if act == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if act == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {act!r}; expected one of {ACTIVATIONS}")


class _Block(nn.Module):
    """One residual block: ``h + fc2(act(fc1(norm(h))))``."""

    def __init__(self, hidden: int, ff: int, act: str):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.fc1 = nn.Linear(hidden, ff)
        self.fc2 = nn.Linear(ff, hidden)
        self.act = _activation(act)

    def forward(self, h: "torch.Tensor") -> "torch.Tensor":
        return h + self.fc2(self.act(self.fc1(self.norm(h))))


class MicrodiffMLP(nn.Module):
    """microdiff's residual-MLP network (see the module docstring and docs/interop.md).

    ``forward(x, t, cls=None)``: ``x`` is ``(n, data_dim)`` (or ``(n, *shape)``, flattened),
    ``t`` the network's time *values* ``(n,)`` (``t − 1`` for DDPM step ``t``, ``999·t``
    for the continuous processes), ``cls`` the class ids ``(n,)`` of a conditional model
    (``None``, or an id equal to ``classes``, is the null class). An unconditional model
    rejects a ``cls``.
    """

    def __init__(
        self,
        data_dim: int,
        hidden: int,
        ff: int,
        temb: int,
        blocks: int,
        classes: int = 0,
        act: str = "silu",
    ):
        super().__init__()
        if min(data_dim, hidden, ff, temb) <= 0 or blocks < 0 or classes < 0:
            raise ValueError("data_dim, hidden, ff and temb must be > 0; blocks, classes >= 0")
        if temb % 2:
            raise ValueError(f"temb must be even, got {temb}")
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}; expected one of {ACTIVATIONS}")
        self.data_dim = data_dim
        self.hidden = hidden
        self.ff = ff
        self.temb = temb
        self.classes = classes
        self.act_name = act
        # Registration order = state_dict order (the order of the table in docs/interop.md).
        self.inp = nn.Linear(data_dim, hidden)
        self.time = nn.Sequential(nn.Linear(temb, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        if classes > 0:
            self.class_emb = nn.Embedding(classes + 1, hidden)
        else:
            self.class_emb = None
        self.blocks = nn.ModuleList(_Block(hidden, ff, act) for _ in range(blocks))
        self.norm = nn.LayerNorm(hidden, eps=LN_EPS)
        self.act = _activation(act)
        self.out = nn.Linear(hidden, data_dim)
        self.register_buffer("_freqs", time_frequencies(temb), persistent=False)

    @property
    def architecture(self) -> dict:
        """The ``microdiff.architecture`` JSON object of docs/interop.md."""
        return {
            "data_dim": self.data_dim,
            "hidden": self.hidden,
            "ff": self.ff,
            "temb": self.temb,
            "blocks": len(self.blocks),
            "classes": self.classes,
            "act": self.act_name,
        }

    def time_embedding(self, t: "torch.Tensor") -> "torch.Tensor":
        """``sinusoidal(t)``: ``(n, temb)``, sines first, then cosines."""
        a = t.to(self._freqs.dtype).reshape(-1, 1) * self._freqs.reshape(1, -1)
        return torch.cat([torch.sin(a), torch.cos(a)], dim=1)

    def forward(
        self,
        x: "torch.Tensor",
        t: "torch.Tensor",
        cls: Optional["torch.Tensor"] = None,
    ) -> "torch.Tensor":
        shape = x.shape
        n = shape[0]
        x = x.reshape(n, -1)
        if x.shape[1] != self.data_dim:
            raise ValueError(f"x has {x.shape[1]} values per example, the model {self.data_dim}")
        t = torch.as_tensor(t, dtype=self._freqs.dtype, device=x.device).reshape(-1)
        if t.numel() == 1 and n != 1:
            t = t.expand(n)
        if t.numel() != n:
            raise ValueError(f"t has {t.numel()} values for {n} examples")
        h = self.inp(x) + self.time(self.time_embedding(t))
        if self.class_emb is not None:
            if cls is None:
                cls = torch.full((n,), self.classes, dtype=torch.long, device=x.device)
            else:
                cls = torch.as_tensor(cls, device=x.device).reshape(-1).long()
                if cls.numel() == 1 and n != 1:
                    cls = cls.expand(n)
            h = h + self.class_emb(cls)
        elif cls is not None:
            raise ValueError("an unconditional model (classes = 0) takes no class ids")
        for block in self.blocks:
            h = block(h)
        return self.out(self.act(self.norm(h))).reshape(shape)


def _json(v: Any) -> str:
    if isinstance(v, str):
        json.loads(v)  # must already be JSON
        return v
    return json.dumps(v, separators=(",", ":"))


def _normalizer(normalizer: Any, dim: int) -> dict:
    """``{"scale": [...], "offset": [...]}`` from a dict, a ``(scale, offset)`` pair or
    ``None`` (identity)."""
    if normalizer is None:
        scale, offset = [1.0] * dim, [0.0] * dim
    elif isinstance(normalizer, Mapping):
        scale, offset = normalizer["scale"], normalizer["offset"]
    else:
        scale, offset = normalizer
    scale = [float(v) for v in scale]
    offset = [float(v) for v in offset]
    if len(scale) != len(offset):
        raise ValueError("normalizer: scale and offset differ in length")
    return {"scale": scale, "offset": offset}


def save_safetensors(
    model: MicrodiffMLP,
    path: str,
    *,
    process: Union[str, Mapping],
    prediction: str,
    shape: Sequence[int],
    normalizer: Any,
    dataset: str,
    data_range: Optional[Sequence[float]] = None,
) -> dict:
    """Write ``model``'s tensors (float32, contiguous) and the ``__metadata__`` of
    docs/interop.md to ``path``; returns the metadata.

    ``process``: the serde JSON of the noise process (a JSON string or a dict), e.g.
    ``{"Ddpm":{"steps":1000,"betas":{"Linear":{"beta_start":0.0001,"beta_end":0.02}}}}``.
    ``prediction``: ``epsilon``, ``velocity``, ``sample``, ``v`` or ``score``.
    ``normalizer``: ``{"scale": [...], "offset": [...]}`` (data = x·scale + offset) or a
    ``(scale, offset)`` pair. ``data_range``: optional ``[lo, hi]`` of the data.
    """
    from safetensors.torch import save_file

    if prediction not in ("epsilon", "velocity", "sample", "v", "score"):
        raise ValueError(f"unknown prediction {prediction!r}")
    shape = [int(s) for s in shape]
    if math.prod(shape) != model.data_dim:
        raise ValueError(f"shape {shape} has {math.prod(shape)} values, the model {model.data_dim}")
    data = {
        "shape": shape,
        "normalizer": _normalizer(normalizer, model.data_dim),
        "dataset": dataset,
    }
    if data_range is not None:
        data["data_range"] = [float(v) for v in data_range]
    metadata = {
        "microdiff.format": FORMAT_VERSION,
        "microdiff.architecture": _json(model.architecture),
        "microdiff.process": _json(process),
        "microdiff.prediction": prediction,
        "microdiff.data": _json(data),
    }
    tensors = {
        name: t.detach().to(device="cpu", dtype=torch.float32).contiguous().clone()
        for name, t in model.state_dict().items()
    }
    save_file(tensors, path, metadata=metadata)
    return metadata


def load_safetensors(path: str) -> "tuple[MicrodiffMLP, dict]":
    """Read a file written by :func:`save_safetensors` (or by microdiff): the model, with
    its weights, and the metadata (JSON values parsed)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(path, framework="pt") as f:
        raw = f.metadata() or {}
    if "microdiff.architecture" not in raw:
        raise ValueError(f"{path}: no microdiff.architecture metadata")
    meta: dict = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v) if k != "microdiff.prediction" else v
        except json.JSONDecodeError:
            meta[k] = v
    arch = meta["microdiff.architecture"]
    model = MicrodiffMLP(
        arch["data_dim"],
        arch["hidden"],
        arch["ff"],
        arch["temb"],
        arch["blocks"],
        classes=arch.get("classes", 0),
        act=arch.get("act", "silu"),
    )
    model.load_state_dict(load_file(path))
    return model, meta
