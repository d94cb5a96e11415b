"""microdiff from Python: weight blobs sampled by the same no_std runtime as the CLI and the
device, bit for bit; sampler programs and noise schedules; PyTorch networks (a safetensors
file or a ``state_dict``, docs/interop.md) made into blobs.

>>> import microdiff
>>> blob = microdiff.Blob("model.mdfb")            # or Blob(open(..., "rb").read())
>>> x = blob.sample(blob.programs[0], 1000, seed=1)  # float32, shape (1000, blob.data_len)

``microdiff.reference`` (the PyTorch reference network) is imported on first use, so that
importing ``microdiff`` never imports torch.
"""

import importlib as _importlib

from ._native import (  # noqa: F401  (re-exported)
    MAX_BLOB_BYTES,
    Blob,
    alpha_sigma,
    default_sampler,
    from_safetensors,
    from_state_dict,
    sampler_program,
    time_value,
)

__all__ = [
    "Blob",
    "alpha_sigma",
    "default_sampler",
    "from_safetensors",
    "from_state_dict",
    "sampler_program",
    "time_value",
    "MAX_BLOB_BYTES",
]

_LAZY_SUBMODULES = ("reference",)


def __getattr__(name):
    # PEP 562: `microdiff.reference` loads the torch module only when it is asked for.
    if name in _LAZY_SUBMODULES:
        module = _importlib.import_module("." + name, __name__)
        globals()[name] = module
        return module
    raise AttributeError("module {!r} has no attribute {!r}".format(__name__, name))
