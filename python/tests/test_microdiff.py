"""The `microdiff` Python package against the `microdiff` CLI: the same blobs, the same
samples bit for bit, the same program instructions; errors as Python exceptions.

Blobs are made by the CLI from short trainings (0.1 s each) in a temporary directory. The CLI
is `cargo run -q -p microdiff-trainer --` from the repository root, or the binary named by
$MICRODIFF_CLI.
"""

import json
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

import microdiff

REPO = pathlib.Path(__file__).resolve().parents[2]
TRAIN = ["--data", "moons", "--steps", "300", "--hidden", "32", "--ff", "64", "--blocks", "1"]


def cli(*args):
    """Runs the CLI from the repository root; returns its standard output."""
    exe = os.environ.get("MICRODIFF_CLI")
    cmd = [exe] if exe else ["cargo", "run", "-q", "-p", "microdiff-trainer", "--"]
    done = subprocess.run(
        cmd + [str(a) for a in args], cwd=REPO, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise AssertionError("microdiff {}: {}".format(" ".join(map(str, args)), done.stderr))
    return done.stdout


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("microdiff")


@pytest.fixture(scope="session")
def uncond_run(work):
    run = work / "run"
    cli("train", *TRAIN, "--quiet", "--out", run)
    return run


@pytest.fixture(scope="session")
def uncond(uncond_run, work):
    """An unconditional DDPM blob with a deterministic and a stochastic program."""
    blob = work / "m.mdfb"
    cli("export", uncond_run, "--out", blob, "--sampler", "dpmpp2m:16:clip=3", "--sampler", "ddpm:20")
    return blob


@pytest.fixture(scope="session")
def cond_run(work):
    run = work / "runc"
    cli("train", *TRAIN, "--conditional", "true", "--quiet", "--out", run)
    return run


@pytest.fixture(scope="session")
def cond(cond_run, work):
    """A class-conditional blob with guidance."""
    blob = work / "c.mdfb"
    cli("export", cond_run, "--out", blob, "--sampler", "ddim:8", "--guidance", "2")
    return blob


def cli_samples(blob, program, n, seed, cls, out):
    """`microdiff sample --csv` parsed as float32: the CLI writes Rust's shortest round-trip
    f32 text, so np.float32(text) recovers every bit."""
    csv = out / "{}-{}-{}-{}.csv".format(program, n, seed, cls)
    cli("sample", blob, "--program", program, "-n", n, "--seed", seed, "--class", cls, "--csv", csv)
    rows = [line.split(",") for line in csv.read_text().splitlines()]
    return np.array([[np.float32(v) for v in row] for row in rows], dtype=np.float32)


def same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_blob_metadata_matches_inspect(uncond):
    b = microdiff.Blob(uncond)
    doc = json.loads(cli("inspect", uncond, "--json"))
    assert b.programs == [p["name"] for p in doc["programs"]] == ["dpmpp2m16c3", "ddpm20"]
    assert b.shape == tuple(doc["shape"]) == (2,)
    assert b.data_len == 2
    assert b.classes == doc["classes"] == 0
    assert b.objective == doc["objective"]
    assert b.prediction == doc["prediction"]
    assert len(b) == doc["bytes"]
    assert "dpmpp2m16c3" in repr(b)


def test_blob_from_bytes_equals_from_path(uncond):
    data = uncond.read_bytes()
    by_path = microdiff.Blob(uncond)
    for source in (str(uncond), data, bytearray(data), memoryview(data)):
        b = microdiff.Blob(source)
        assert b == by_path
        assert b.programs == by_path.programs
        assert b.bytes == data == bytes(b)


@pytest.mark.parametrize("program", ["dpmpp2m16c3", "ddpm20"])
def test_samples_equal_the_cli_bit_for_bit(uncond, work, program):
    x = microdiff.Blob(uncond).sample(program, 50, seed=3)
    assert x.dtype == np.float32 and x.shape == (50, 2)
    assert same_bits(x, cli_samples(uncond, program, 50, 3, 0, work))


def test_conditional_samples_equal_the_cli(cond, work):
    b = microdiff.Blob(cond)
    assert b.classes == 2 and b.programs == ["ddim8-cfg"]
    for cls in (0, 1):
        x = b.sample("ddim8-cfg", 40, seed=11, class_=cls)
        assert same_bits(x, cli_samples(cond, "ddim8-cfg", 40, 11, cls, work))
    with pytest.raises(ValueError, match="class"):
        b.sample("ddim8-cfg", 5, class_=2)


def test_sample_streams_and_seeds(uncond):
    b = microdiff.Blob(uncond)
    many = b.sample("ddpm20", 64, seed=5)
    # Sample i uses noise stream i: its bits do not depend on how many are drawn.
    assert same_bits(b.sample("ddpm20", 7, seed=5), many[:7])
    assert same_bits(b.sample("ddpm20", 64, seed=5), many)
    assert not np.array_equal(b.sample("ddpm20", 64, seed=6), many)
    assert b.sample("ddpm20", 0).shape == (0, 2)
    assert same_bits(b.sample("ddpm20", 3), b.sample("ddpm20", 3, seed=0, class_=0))


def test_sampling_from_threads(uncond):
    # The GIL is released while drawing; threads get the same bits as one after the other.
    b = microdiff.Blob(uncond)
    want = b.sample("dpmpp2m16c3", 200, seed=9)
    got = [None] * 4

    def draw(k):
        got[k] = b.sample("dpmpp2m16c3", 200, seed=9)

    threads = [threading.Thread(target=draw, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(same_bits(g, want) for g in got)


def test_file_errors_are_oserror(work):
    with pytest.raises(FileNotFoundError) as e:
        microdiff.Blob(work / "no-such.mdfb")
    assert "no-such.mdfb" in str(e.value)
    with pytest.raises(OSError):
        microdiff.Blob(work)  # a directory
    with pytest.raises(TypeError):
        microdiff.Blob(42)


def test_bad_bytes_are_valueerror(uncond):
    with pytest.raises(ValueError, match="blob"):
        microdiff.Blob(b"not a blob at all")
    with pytest.raises(ValueError, match="blob"):
        microdiff.Blob(b"")
    data = uncond.read_bytes()
    with pytest.raises(ValueError, match="blob"):
        microdiff.Blob(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x40
    with pytest.raises(ValueError, match="blob"):
        microdiff.Blob(bytes(flipped))


def test_bad_sample_arguments_are_valueerror(uncond):
    b = microdiff.Blob(uncond)
    with pytest.raises(ValueError, match="ddim99"):
        b.sample("ddim99", 10)
    with pytest.raises(ValueError, match="unconditional"):
        b.sample("ddpm20", 10, class_=1)
    for bad in ({"n": -1}, {"n": 2**40}, {"n": 1.5}, {"n": 1, "seed": -1}, {"n": 1, "seed": 2**64}):
        with pytest.raises(ValueError):
            b.sample("ddpm20", **bad)


def test_instructions_match_inspect_json(uncond):
    b = microdiff.Blob(uncond)
    doc = json.loads(cli("inspect", uncond, "--json"))
    for p in doc["programs"]:
        assert b.instructions(p["name"]) == p["instructions"]
    with pytest.raises(ValueError):
        b.instructions("nope")


def test_sampler_program_is_the_exported_program(uncond, cond):
    assert microdiff.sampler_program("dpmpp2m:16:clip=3", "ddpm") == microdiff.Blob(
        uncond
    ).instructions("dpmpp2m16c3")
    assert microdiff.sampler_program("ddpm:20") == microdiff.Blob(uncond).instructions("ddpm20")
    guided = microdiff.sampler_program("ddim:8", guidance=2.0)
    assert guided == microdiff.Blob(cond).instructions("ddim8-cfg")
    assert {i["class"] for i in guided if i["op"] == "eval"} == {"caller", "null"}
    assert microdiff.default_sampler("ddpm") == "dpmpp2m:16:clip=3"
    assert microdiff.default_sampler("flow") == "heun:8"


def test_sampler_program_shapes():
    prog = microdiff.sampler_program("ddim:10")
    ops = [i["op"] for i in prog]
    assert ops.count("eval") == 10 and ops.count("step") == 11 and ops[-1] == "step"
    assert prog[0] == {"op": "lin", "dst": 0, "terms": [], "noise": 1.0}
    evals = [i for i in prog if i["op"] == "eval"]
    assert evals[0]["time"] == 999.0 and evals[-1]["time"] == microdiff.time_value("ddpm", 100)
    heun = microdiff.sampler_program("heun:4", "flow")
    assert [i["op"] for i in heun].count("eval") == 7
    ve = microdiff.sampler_program("pc:5", "ve", sigma_max=10.0)
    assert ve[0] == {"op": "lin", "dst": 0, "terms": [], "noise": 10.0}
    assert [i["op"] for i in ve].count("eval") == 10


@pytest.mark.parametrize(
    "spec, process, kwargs, match",
    [
        ("ddim", "ddpm", {}, "sampler"),
        ("nope:3", "ddpm", {}, "nope"),
        ("em:10", "ddpm", {}, "does not apply"),
        ("ddim:10", "flow", {}, "does not apply"),
        ("ddim:2000", "ddpm", {}, "steps"),
        ("ddim:10", "dppm", {}, "dppm"),
        ("euler:10", "ve", {}, "sigma_max"),
        ("euler:10", "vp", {"sigma_max": 3.0}, "sigma_max"),
        ("euler:10", "ve", {"sigma_max": -1.0}, "ve"),
        ("ddim:10", "ddpm", {"guidance": -1.0}, "guidance"),
        ("ddim:10", "ddpm", {"name": "has space"}, "name"),
        ("ddim:10", "ddpm", {"prediction": "x0"}, "x0"),
        ("heun:8", "flow", {"prediction": "epsilon"}, "velocity, sample"),
    ],
)
def test_sampler_program_errors(spec, process, kwargs, match):
    with pytest.raises(ValueError, match=match):
        microdiff.sampler_program(spec, process, **kwargs)


def test_sampler_program_for_other_predictions():
    # The same instructions; the x0 network's output is mapped to eps in the LIN coefficients.
    own = microdiff.sampler_program("ddim:10")
    x0 = microdiff.sampler_program("ddim:10", prediction="sample")
    assert microdiff.sampler_program("ddim:10", prediction="epsilon") == own
    assert [i["op"] for i in x0] == [i["op"] for i in own] and x0 != own


def test_an_x0_network_from_pytorch_samples_its_data():
    fixtures = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
    b = microdiff.Blob(microdiff.from_safetensors(fixtures / "tiny-x0.safetensors"))
    assert b.prediction == "sample"
    x = b.sample(b.programs[0], 2000, seed=1)
    data = np.loadtxt(fixtures / "tiny-data.csv", delimiter=",", skiprows=1)[:, :2]
    # The two moons' mean and spread, within a few standard errors of 2000 samples.
    assert np.all(np.abs(x.mean(axis=0) - data.mean(axis=0)) < 0.05)
    assert np.all(np.abs(x.std(axis=0) / data.std(axis=0) - 1) < 0.05)


def test_alpha_sigma():
    for process, ts in [("ddpm", [0, 1, 2, 250, 999, 1000]), ("vp", np.linspace(1e-3, 1, 17))]:
        for t in ts:
            a, s = microdiff.alpha_sigma(process, float(t))
            assert 0 <= a <= 1 and 0 <= s <= 1
            assert abs(a * a + s * s - 1) < 1e-12
    assert microdiff.alpha_sigma("ddpm", 0) == (1.0, 0.0)
    assert microdiff.alpha_sigma("flow", 0.25) == (0.25, 0.75)
    a, s = microdiff.alpha_sigma("ve", 1.0, sigma_max=20.0)
    assert a == 1.0 and abs(s - 20.0) < 1e-9
    # The network's time values: DDPM t − 1, the continuous processes 999·t.
    assert microdiff.time_value("ddpm", 1) == 0.0
    assert microdiff.time_value("ddpm", 1000) == 999.0
    assert microdiff.time_value("vp", 1.0) == 999.0
    assert microdiff.time_value("flow", 0.5) == 499.5
    # A process as the JSON a checkpoint stores.
    ddpm = '{"Ddpm":{"steps":10,"betas":{"Linear":{"beta_start":0.1,"beta_end":0.2}}}}'
    assert abs(microdiff.alpha_sigma(ddpm, 1)[0] ** 2 - 0.9) < 1e-12
    with pytest.raises(ValueError):
        microdiff.alpha_sigma("ddpm", float("nan"))
    with pytest.raises(ValueError):
        microdiff.alpha_sigma('{"Ddpm":{"steps":0}}', 1)


def test_import_does_not_import_torch():
    code = "import sys, microdiff; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# PyTorch interop: safetensors / state_dict → blob, equal to the CLI's export of the same run.


def exported(run, out, *args):
    """`microdiff export RUN --out OUT ARGS…`, read back."""
    cli("export", run, "--out", out, *args)
    return out.read_bytes()


def read_safetensors(path):
    """A safetensors file as (metadata, {name: float32 array}), parsed with the format's spec
    only (8-byte header length, JSON header, little-endian data)."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__")
    body = data[8 + n :]
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32"
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(body[a:b], dtype="<f4").reshape(t["shape"])
    return meta, tensors


@pytest.fixture(scope="session")
def uncond_st(uncond_run, work):
    st = work / "m.safetensors"
    cli("export", uncond_run, "--format", "safetensors", "--out", st)
    return st


@pytest.mark.parametrize(
    "dtype, samplers",
    [("i8", None), ("f32", ["ddim:10", "ddpm:20"]), ("f16", "euler:12"), ("w8a8", "ddim:6")],
)
def test_from_safetensors_equals_export(uncond_run, uncond_st, work, dtype, samplers):
    args = ["--dtype", dtype]
    if samplers is not None:
        for s in [samplers] if isinstance(samplers, str) else samplers:
            args += ["--sampler", s]
    want = exported(uncond_run, work / "st-{}.mdfb".format(dtype), *args)
    got = microdiff.from_safetensors(uncond_st, dtype=dtype, samplers=samplers)
    assert isinstance(got, bytes) and got == want
    assert microdiff.from_safetensors(uncond_st.read_bytes(), dtype=dtype, samplers=samplers) == want


def test_from_safetensors_guided(cond_run, work):
    st = work / "c.safetensors"
    cli("export", cond_run, "--format", "safetensors", "--out", st)
    want = exported(cond_run, work / "c2.mdfb", "--sampler", "ddim:8", "--guidance", "2")
    got = microdiff.from_safetensors(str(st), samplers=["ddim:8"], guidance=2.0)
    assert got == want
    b = microdiff.Blob(got)
    assert b.classes == 2 and b.programs == ["ddim8-cfg"]


def test_from_state_dict_equals_export(uncond_run, uncond_st, work):
    meta, tensors = read_safetensors(uncond_st)
    data = json.loads(meta["microdiff.data"])
    kwargs = dict(
        architecture=json.loads(meta["microdiff.architecture"]),
        process=meta["microdiff.process"],
        shape=data["shape"],
        normalizer=data.get("normalizer"),
        samplers=["ddim:10"],
    )
    want = exported(uncond_run, work / "sd.mdfb", "--sampler", "ddim:10")
    assert microdiff.from_state_dict(tensors, **kwargs) == want
    # float64 arrays hold the float32 values exactly; the architecture may be its JSON text.
    wide = {k: v.astype(np.float64) for k, v in tensors.items()}
    kwargs["architecture"] = meta["microdiff.architecture"]
    assert microdiff.from_state_dict(wide, **kwargs) == want
    # The default process by name is the run's (DDPM, T = 1000, linear β).
    kwargs["process"] = "ddpm"
    assert microdiff.from_state_dict(tensors, **kwargs) == want
    try:
        import torch
    except ImportError:
        return
    as_torch = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()}
    assert microdiff.from_state_dict(as_torch, **kwargs) == want


def test_interop_errors(uncond_run, uncond_st, work):
    with pytest.raises(ValueError, match="safetensors"):
        microdiff.from_safetensors(b"not a safetensors file")
    with pytest.raises(FileNotFoundError):
        microdiff.from_safetensors(work / "missing.safetensors")
    with pytest.raises(ValueError, match="dtype"):
        microdiff.from_safetensors(uncond_st, dtype="i4")
    with pytest.raises(ValueError, match="sampler"):
        microdiff.from_safetensors(uncond_st, samplers="ddim")
    with pytest.raises(ValueError, match="guidance"):
        microdiff.from_safetensors(uncond_st, guidance=2.0)
    meta, tensors = read_safetensors(uncond_st)
    kwargs = dict(
        architecture=json.loads(meta["microdiff.architecture"]), process="ddpm", shape=[2]
    )
    missing = dict(tensors)
    del missing["out.bias"]
    with pytest.raises(ValueError, match="out.bias"):
        microdiff.from_state_dict(missing, **kwargs)
    ints = dict(tensors)
    ints["out.bias"] = np.zeros(2, dtype=np.int64)
    with pytest.raises(ValueError, match="out.bias"):
        microdiff.from_state_dict(ints, **kwargs)
    with pytest.raises(ValueError, match="shape"):
        microdiff.from_state_dict(tensors, **dict(kwargs, shape=[3]))
    with pytest.raises(ValueError, match="prediction"):
        microdiff.from_state_dict(tensors, **dict(kwargs, prediction="velocity"))
    with pytest.raises(ValueError, match="process"):
        microdiff.from_state_dict(tensors, **dict(kwargs, process="dpm"))


ROOT = pathlib.Path(__file__).resolve().parents[2]


def python_blocks(markdown):
    """The ```python blocks of a markdown file, in order."""
    text = (ROOT / markdown).read_text()
    return [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]


def run_blocks(markdown, cwd):
    blocks = python_blocks(markdown)
    assert blocks, markdown
    here = os.getcwd()
    os.chdir(cwd)
    try:
        for block in blocks:
            exec(compile(block, markdown, "exec"), {})
    finally:
        os.chdir(here)


def test_readme_python_block_runs(uncond, uncond_st, tmp_path):
    # The README's names: m.mdfb (a 2-D model) and m.safetensors beside it.
    (tmp_path / "m.mdfb").write_bytes(pathlib.Path(uncond).read_bytes())
    (tmp_path / "m.safetensors").write_bytes(pathlib.Path(uncond_st).read_bytes())
    run_blocks("README.md", tmp_path)


def test_interop_doc_python_blocks_run(tmp_path):
    # Paths in docs/interop.md are from the repository root; what a block writes goes to tmp.
    (tmp_path / "python").symlink_to(ROOT / "python")
    run_blocks("docs/interop.md", tmp_path)
    assert microdiff.Blob(str(tmp_path / "tiny-x0.mdfb")).prediction == "sample"


def test_python_step_of_the_m0_walkthrough_equals_the_shell(work):
    st = ROOT / "python/fixtures/tiny-eps.safetensors"
    run = work / "tiny-walk"
    cli("import", st, "--out", run)
    want = exported(run, work / "tiny-walk.mdfb", "--dtype", "w8a8")
    assert microdiff.from_safetensors(str(st), dtype="w8a8") == want
    want = exported(run, work / "tiny-512.mdfb", "--dtype", "w8a8", "--calibration-samples", "512")
    assert microdiff.from_safetensors(str(st), dtype="w8a8", calibration_samples=512) == want
    with pytest.raises(ValueError, match="calibration_samples"):
        microdiff.from_safetensors(str(st), calibration_samples=512)  # i8: not calibrated
    with pytest.raises(ValueError, match="calibration_samples=0"):
        microdiff.from_safetensors(str(st), dtype="w8a8", calibration_samples=0)
