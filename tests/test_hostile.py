"""Issue 15 item 6, hostile input: every case is one ``error: ...`` line on stderr, exit status 2, no
traceback, and nothing written: a finished-looking results/<name>/ made before the command is byte for byte
the same after it, and no new file appears under results/ (nor beside an inspected model).

The cases run in this process through click's CliRunner (a fresh process adds nothing here: the CLI's one-line
errors are ``_fail``'s, the same in both) and use the cheapest command that reaches the check: ``plan`` for the
config, ``data prepare`` for the data, ``model inspect`` for model and scaler files; ``run`` only where only a
run gets there (a saved scaler's range against the training data).
"""

from __future__ import annotations

import copy
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from backtester.cli import main
from backtester.synth import synth_bars

BASE = {
    "name": "t",
    "seed": 1,
    "data": {"path": "bars.parquet", "cache_dir": "cache"},
    "backtest": {"start": "2024-01-09 00:00", "horizon": 4, "retrain": {"rule": "weekly", "weekday": "mon"}},
    "strategies": {"naive": {}},
    "output": {"dir": "results", "plots": False},
}
TINY_KERAS = {"type": "lstm", "memory": 12, "layers": [{"units": 2, "dropout": 0.0}], "epochs": 1}


def billion_laughs(levels: int = 9) -> str:
    text = 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
    for k in range(1, levels):
        text += f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]\n"
    return text


def patched(**changes):
    """BASE with ``a.b=value`` style changes (keys joined by '__')."""
    cfg = copy.deepcopy(BASE)
    for key, value in changes.items():
        node, parts = cfg, key.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return yaml.safe_dump(cfg)


def strategy(spec: dict) -> str:
    return patched(strategies={"s": spec})


BASE_TEXT = yaml.safe_dump(BASE)

# (id, command, config text, key phrase of the one error line)
CONFIG_CASES = [
    # 1. callables that are not what they should be: refused before they are imported or called
    (
        "builder-os-system",
        "plan",
        strategy({"type": "keras", "builder": "os:system", "memory": 12}),
        "strategies.s.builder: 'os:system' is in Python's standard library",
    ),
    (
        "builder-print",
        "plan",
        strategy({"type": "keras", "builder": "builtins:print", "memory": 12}),
        "strategies.s.builder: 'builtins:print' is in Python's standard library",
    ),
    (
        "builder-subprocess",
        "plan",
        strategy({"type": "keras", "builder": "subprocess:call", "memory": 12}),
        "strategies.s.builder: 'subprocess:call' is in Python's standard library",
    ),
    (
        "builder-a-class",
        "plan",
        strategy({"type": "keras", "builder": "tests.user_models:NotParams", "memory": 12}),
        "'tests.user_models:NotParams' is a class, not a Python function build(hp, memory, steps)",
    ),
    (
        "builder-a-ufunc",
        "plan",
        strategy({"type": "keras", "builder": "numpy:add", "memory": 12}),
        "'numpy:add' is a ufunc, not a Python function",
    ),
    (
        "type-getcwd",
        "plan",
        strategy({"type": "os:getcwd"}),
        "strategies.s.type: 'os:getcwd' is in Python's standard library (module 'os'), not a Params class",
    ),
    ("type-print", "plan", strategy({"type": "builtins:print"}), "'builtins:print' is in Python's standard library"),
    (
        "type-not-params",
        "plan",
        strategy({"type": "tests.user_models:NotParams"}),
        "not a subclass of strategies.Params",
    ),
    ("type-the-base-class", "plan", strategy({"type": "strategies.base:Params"}), "which defines no build(seed)"),
    # 2. names and output paths that escape
    (
        "name-dotdot-path",
        "run",
        patched(name="../../x"),
        "name: the run's folder results/<name>/ must be one plain name",
    ),
    ("name-absolute", "run", patched(name="/abs"), "must be one plain name"),
    ("name-dotdot", "run", patched(name=".."), "must be one plain name"),
    ("name-dot", "run", patched(name="."), "must be one plain name"),
    ("name-hidden", "run", patched(name=".t"), "starting with a letter, digit or '_'"),
    ("name-separator", "run", patched(name="a/b"), "must be one plain name"),
    ("name-too-long", "run", patched(name="x" * 300), "at most 100 characters"),
    ("output-dir-a-file", "run", patched(output__dir="afile"), "output.dir: afile is a file, not a folder"),
    ("output-dir-under-a-file", "run", patched(output__dir="afile/sub"), "lies under afile, which is a file"),
    ("run-folder-a-file", "run", patched(name="runfile"), "name: results/runfile is a file, not a run folder"),
    # 3. YAML tags, alias bombs, huge numbers
    (
        "python-tag",
        "plan",
        BASE_TEXT + 'x: !!python/object/apply:os.system ["echo hi"]\n',
        "the tag '!!python/object/apply:os.system' is not allowed in a config",
    ),
    (
        "python-tag-in-a-value",
        "plan",
        BASE_TEXT.replace("seed: 1", "seed: !!python/object/apply:os.getcwd []"),
        "the tag '!!python/object/apply:os.getcwd' is not allowed",
    ),
    ("custom-tag", "plan", BASE_TEXT.replace("seed: 1", "seed: !mytag 1"), "the tag '!mytag' is not allowed"),
    ("billion-laughs", "plan", billion_laughs() + BASE_TEXT, "expands to more than 100,000 values through its aliases"),
    ("alias-loop", "plan", BASE_TEXT + "x: &x [1, *x]\n", "an alias refers to the block it sits in"),
    (
        "horizon-1e308",
        "plan",
        patched(backtest__horizon=1e308),
        "backtest.horizon: must be a whole number from 1 to 1000",
    ),
    (
        "epochs-1e20",
        "plan",
        strategy({**TINY_KERAS, "epochs": 10**20}),
        "strategies.s.epochs: must be a whole number from 1 to 100,000",
    ),
    (
        "seed-2-80",
        "plan",
        BASE_TEXT.replace("seed: 1", f"seed: {2**80}"),
        "seed: must be a whole number from 0 to 4,294,967,295",
    ),
    (
        "memory-1e12",
        "plan",
        strategy({**TINY_KERAS, "memory": 10**12}),
        "strategies.s.memory: must be a whole number from 1 to 100,000",
    ),
    ("jobs-1e20", "plan", patched(execution__jobs=10**20), "execution.jobs: must be a whole number from 1 to 1024"),
    (
        "naive-bars-1e20",
        "plan",
        strategy({"type": "naive", "bars": 10**20}),
        "strategies.s.bars: 100000000000000000000 is out of range; numbers in a config lie between -1e15 and 1e15",
    ),
    # 4. mixed UTC offsets in the data's timestamps
    (
        "mixed-offsets",
        "data prepare",
        patched(data__path="mixed.csv"),
        "mixed.csv: column 'timestamp' has mixed UTC offsets (+00:00 at row 0, +02:00 at row",
    ),
    # 5. model files that are not what their name says (a run's config reads the first bytes)
    (
        "model-text-h5",
        "plan",
        strategy({"type": "imported", "model": "files/text.h5"}),
        "files/text.h5: not an HDF5 (.h5) or .keras file: it is a text file starting 'not a model'",
    ),
    (
        "model-zip-h5",
        "plan",
        strategy({"type": "imported", "model": "files/zip.h5"}),
        "files/zip.h5: named .h5 but it is a zip archive holding a .keras model; rename it to zip.keras",
    ),
    (
        "model-h5-keras",
        "plan",
        strategy({"type": "imported", "model": "files/hdf5.keras"}),
        "files/hdf5.keras: named .keras but it is an HDF5 file",
    ),
    (
        "scaler-empty",
        "plan",
        strategy({"type": "imported", "model": "files/model.keras", "scaler": "files/empty.pkl"}),
        "files/empty.pkl: not a pickled scaler: it is empty (0 bytes)",
    ),
]

# 5 and 7: `backtest model inspect` (args after the command; phrase)
INSPECT_CASES = [
    ("h5-that-is-text", ["files/text.h5"], "files/text.h5: not an HDF5 (.h5) or .keras file: it is a text file"),
    ("h5-that-is-zip", ["files/zip.h5"], "named .h5 but it is a zip archive holding a .keras model"),
    ("keras-that-is-hdf5", ["files/hdf5.keras"], "named .keras but it is an HDF5 file (the .h5 format)"),
    (
        "keras-that-is-text",
        ["files/text.keras"],
        "files/text.keras: not an HDF5 (.h5) or .keras file: it is a text file",
    ),
    ("empty-h5", ["files/empty.h5"], "files/empty.h5: not an HDF5 (.h5) or .keras file: it is empty (0 bytes)"),
    (
        "scaler-text",
        ["files/model.keras", "--scaler", "files/text.pkl", "--trust-pickle"],
        "files/text.pkl: cannot unpickle it: it is a text file starting 'not a pickle'",
    ),
    (
        "scaler-empty",
        ["files/model.keras", "--scaler", "files/empty.pkl", "--trust-pickle"],
        "files/empty.pkl: not a pickled scaler: it is empty (0 bytes)",
    ),
    (
        "scaler-hdf5",
        ["files/model.keras", "--scaler", "files/hdf5.keras", "--trust-pickle"],
        "files/hdf5.keras: not a pickled scaler: it is an HDF5 file (the model file?)",
    ),
    (
        "scaler-not-a-scaler",
        ["files/model.keras", "--scaler", "files/dict.pkl", "--trust-pickle"],
        "files/dict.pkl: holds a builtins.dict, not a fitted MinMaxScaler or StandardScaler",
    ),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with bars, a CSV with mixed offsets, a finished-looking results/t/ and hostile model files."""
    root = tmp_path_factory.mktemp("hostile")
    bars = synth_bars(start="2024-01-01", days=12, seed=3)
    bars.to_parquet(root / "bars.parquet", index=False)
    utc = bars["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S+00:00")
    local = bars["timestamp"].dt.tz_convert("Etc/GMT-2").dt.strftime("%Y-%m-%d %H:%M:%S+02:00")
    later = np.arange(len(bars)) >= len(bars) // 2  # the second half written on a +02:00 clock
    bars.assign(timestamp=np.where(later, local, utc)).to_csv(root / "mixed.csv", index=False)
    (root / "afile").write_text("a file, not a folder\n")
    (root / "results" / "t" / "models").mkdir(parents=True)
    (root / "results" / "t" / "manifest.json").write_text('{"status": "complete"}\n')
    (root / "results" / "t" / "models" / "marker.bin").write_bytes(bytes(range(256)))
    (root / "results" / "runfile").write_text("a file where a run folder would go\n")
    files = root / "files"
    files.mkdir()
    (files / "text.h5").write_text("not a model\n")
    (files / "text.keras").write_text("not a model either\n")
    (files / "empty.h5").write_bytes(b"")
    (files / "empty.pkl").write_bytes(b"")
    (files / "text.pkl").write_text("not a pickle\n")
    (files / "dict.pkl").write_bytes(pickle.dumps({"a": 1}))
    import h5py

    with h5py.File(files / "hdf5.keras", "w") as f:
        f.attrs["model_config"] = "{}"
    with zipfile.ZipFile(files / "zip.h5", "w") as z:
        z.writestr("config.json", "{}")
    (files / "model.keras").write_bytes((files / "zip.h5").read_bytes())  # well named; never loaded by these cases
    return root


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(work: Path, args: list[str], monkeypatch) -> tuple:
    monkeypatch.chdir(work)
    before = tree(work / "results"), tree(work / "files")
    t0 = time.perf_counter()
    res = CliRunner().invoke(main, args)
    seconds = time.perf_counter() - t0
    assert (tree(work / "results"), tree(work / "files")) == before  # untouched, nothing new
    assert sorted(p.name for p in work.iterdir()) == sorted(
        ["bars.parquet", "mixed.csv", "afile", "results", "files", "case.yaml"]
        + (["cache"] if (work / "cache").exists() else [])
    )
    return res, seconds


def assert_one_error_line(res, phrase: str) -> None:
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit), (res.exit_code, res.exception, res.output)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output and "Traceback" not in res.stderr
    assert phrase in lines[0], lines[0]


@pytest.mark.parametrize("command, text, phrase", [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_hostile_config_is_one_line_and_writes_nothing(work, monkeypatch, command, text, phrase):
    (work / "case.yaml").write_text(text)
    res, seconds = invoke(work, [*command.split(), "case.yaml"], monkeypatch)
    assert_one_error_line(res, phrase)
    assert res.stdout == ""
    assert seconds < 20  # an alias bomb is refused at once, not expanded


@pytest.mark.parametrize("args, phrase", [c[1:] for c in INSPECT_CASES], ids=[c[0] for c in INSPECT_CASES])
def test_hostile_model_files_are_one_line_and_write_nothing(work, monkeypatch, args, phrase):
    (work / "case.yaml").write_text("")
    res, _ = invoke(work, ["model", "inspect", *args], monkeypatch)
    assert_one_error_line(res, phrase)


def test_the_alias_bomb_is_refused_quickly(work, monkeypatch):
    (work / "case.yaml").write_text(billion_laughs(12) + BASE_TEXT)
    res, seconds = invoke(work, ["plan", "case.yaml"], monkeypatch)
    assert_one_error_line(res, "expands to more than 100,000 values")
    assert seconds < 2


def test_an_override_with_a_tag_names_the_override(work, monkeypatch):
    (work / "case.yaml").write_text(BASE_TEXT)
    res, _ = invoke(work, ["plan", "case.yaml", "--set", "seed=!!python/object/apply:os.getcwd []"], monkeypatch)
    assert_one_error_line(res, "--set 'seed=!!python/object/apply:os.getcwd []' (line 1): the tag")


# --------------------------------------------------------------------------- with a real (tiny) Keras model


@pytest.fixture(scope="module")
def keras_files(work):
    """A tiny Keras 3 model (lookback 12, one output) and two pickled scalers: one fitted on RV like the data's,
    one on values in [0.002, 0.995] as the notebook's was."""
    from sklearn.preprocessing import MinMaxScaler

    from strategies.keras.runtime import keras_module

    keras = keras_module()
    model = keras.Sequential([keras.Input((12, 1)), keras.layers.LSTM(2), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    folder = work.parent / f"{work.name}-keras"
    folder.mkdir()
    model.save(folder / "model.keras")
    with open(folder / "wide_scaler.pkl", "wb") as f:
        pickle.dump(MinMaxScaler().fit(np.array([[0.002], [0.5], [0.995]])), f)
    return folder


def test_inspect_writes_nothing_without_out(keras_files, tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes((keras_files / "model.keras").read_bytes())
    res = CliRunner().invoke(main, ["model", "inspect", str(model)])
    assert res.exit_code == 0, res.output
    assert "wrote" not in res.stdout and sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]
    out = tmp_path / "described" / "model_config.json"
    res = CliRunner().invoke(main, ["model", "inspect", str(model), "--out", str(out)])
    assert res.exit_code == 0 and res.stdout.splitlines()[-1] == f"wrote {out}" and out.is_file()
    res = CliRunner().invoke(main, ["model", "inspect", str(model), "--out", str(model)])
    assert res.exit_code == 2 and "--out would overwrite" in res.stderr
    assert (tmp_path / "model.keras").read_bytes() == (keras_files / "model.keras").read_bytes()


def test_a_scaler_fitted_on_other_values_is_refused_before_anything_trains(work, keras_files, monkeypatch):
    text = patched(
        name="fresh",
        strategies={
            "nb": {
                "type": "imported",
                "model": str(keras_files / "model.keras"),
                "scaler": str(keras_files / "wide_scaler.pkl"),
                "trust_pickle": True,
                "multistep": "recursive",
                "retrain": {"rule": "never"},
            }
        },
    )
    (work / "case.yaml").write_text(text)
    res, _ = invoke(work, ["run", "-q", "case.yaml"], monkeypatch)
    assert_one_error_line(
        res, "wide_scaler.pkl: the scaler was fitted on values in [0.002, 0.995] but the training data's RV lies in ["
    )
