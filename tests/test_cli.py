"""The command line as a user runs it: real processes, real exit codes."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "UNLABELED_QUIET": "1"}


def cli(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "unlabeled", *map(str, args)], env=ENV, capture_output=True, text=True)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.mark.slow
def test_datasets_lists_builtins():
    out = cli("datasets").stderr
    assert "fashion-mnist" in out and "digits" in out


@pytest.mark.slow
def test_bad_sources_exit_non_zero(tmp_path):
    p = cli("import", tmp_path / "missing", tmp_path / "c", check=False)
    assert p.returncode != 0 and "source not found" in p.stderr
    (tmp_path / "empty").mkdir()
    p = cli("import", tmp_path / "empty", tmp_path / "c", check=False)
    assert p.returncode != 0 and "no importable files" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_whole_path_on_digits(tmp_path):
    cli("import", "digits", tmp_path / "digits")
    p = cli("import", "digits", tmp_path / "digits", check=False)
    assert p.returncode != 0 and "already exists" in p.stderr
    cli("pretrain", tmp_path / "digits", "--out", tmp_path / "run", "--epochs", "2", "--batch-size", "128")
    cli("embed", tmp_path / "run", tmp_path / "digits")
    assert (tmp_path / "run" / "embeddings.parquet").exists()
    out = cli(
        "bench",
        tmp_path / "run",
        "--task",
        tmp_path / "digits",
        "--fractions",
        "0.1,1",
        "--shots",
        "3",
        "--seeds",
        "1",
        "--probes",
        "linear,knn",
        "--baselines",
        "raw,random-init",
    ).stderr
    assert "raw" in out and "random-init" in out and "10%" in out and "3-shot" in out and "unified score" in out
    rows = json.loads((tmp_path / "run" / "bench.json").read_text())["rows"]
    assert len(rows) == 3 * 2 * 3
    assert (tmp_path / "run" / "report.html").stat().st_size > 10_000


def test_settings_parse_numbers_lists_and_strings():
    from unlabeled.cli import parse_settings

    assert parse_settings(["temperature=0.2", "crop_scale=0.35,1", "name=x"], "--option") == {
        "temperature": 0.2,
        "crop_scale": [0.35, 1.0],
        "name": "x",
    }


@pytest.mark.slow
def test_pretrain_options_reach_the_run(digits, tmp_path):
    cli(
        "pretrain",
        digits.path,
        "--out",
        tmp_path / "run",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--option",
        "temperature=0.3",
        "--augment",
        "flip_p=0",
        "--augment",
        "crop_scale=0.5,1",
    )
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["method"]["temperature"] == 0.3
    assert cfg["modality"]["augment"]["flip_p"] == 0 and cfg["modality"]["augment"]["crop_scale"] == [0.5, 1.0]
    p = cli("pretrain", digits.path, "--out", tmp_path / "r2", "--epochs", "1", "--augment", "wobble=1", check=False)
    assert p.returncode == 2 and "wobble" in p.stderr


@pytest.mark.slow
def test_series_path_with_mae_and_the_transformer(tmp_path):
    out = cli("import", "ucr:GunPoint", tmp_path / "gunpoint").stderr
    assert "modality: series" in out and "train 50" in out
    cli(
        "pretrain",
        tmp_path / "gunpoint",
        "--out",
        tmp_path / "g",
        "--method",
        "mae",
        "--epochs",
        "4",
        "--batch-size",
        "16",
        "--option",
        "mask_ratio=0.5",
        "--encoder-option",
        "pool=cls",
    )
    config = json.loads((tmp_path / "g" / "config.json").read_text())
    assert config["encoder"]["name"] == "transformer" and config["method"]["mask_ratio"] == 0.5
    assert config["encoder"]["options"]["pool"] == "cls"
    out = cli(
        "bench",
        tmp_path / "g",
        "--task",
        tmp_path / "gunpoint",
        "--fractions",
        "0.1,1",
        "--seeds",
        "1",
        "--probes",
        "linear",
        "--baselines",
        "raw",
    ).stderr
    assert "10%" in out and "raw" in out
    datasets = cli("datasets").stderr
    assert "ucr:NAME" in datasets and "ucr-small" in datasets and "Covid3Month" in datasets
    # a regression target of another length, through the same encoder
    cli("import", "ucr:Covid3Month", tmp_path / "covid")
    out = cli(
        "bench",
        tmp_path / "g",
        "--task",
        tmp_path / "covid",
        "--target-column",
        "target",
        "--fractions",
        "1",
        "--seeds",
        "1",
        "--probes",
        "linear,knn",
        "--baselines",
        "raw",
        "--metric",
        "rmse",
        "--out",
        tmp_path / "covid-bench",
    ).stderr
    assert "Covid3Month (rmse" in out
    rows = json.loads((tmp_path / "covid-bench" / "bench.json").read_text())["rows"]
    assert {r["probe"] for r in rows} == {"linear", "knn"} and set(rows[0]["metrics"]) == {"mae", "rmse", "r2"}
    p = cli("bench", tmp_path / "g", "--task", tmp_path / "covid", "--baselines", "raw", check=False)
    assert p.returncode == 2 and "--target-column" in p.stderr
    out = cli(
        "scaling",
        tmp_path / "gunpoint",
        "--task",
        tmp_path / "gunpoint",
        "--out",
        tmp_path / "sc",
        "--pool-sizes",
        "0.5,1",
        "--fractions",
        "0.5,1",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--seeds",
        "1",
        "--method",
        "mae",
    ).stderr
    assert "/m +" in out and (tmp_path / "sc" / "scaling.html").is_file()


@pytest.mark.slow
def test_finetune_forget_verify_log(tmp_path, fmnist_small):
    cli("finetune", "--task", fmnist_small.path, "--out", tmp_path / "clf", "--epochs", "1")
    ids = (tmp_path / "clf" / "training-ids.txt").read_text().splitlines()[:50]
    (tmp_path / "forget.txt").write_text("\n".join(ids) + "\n")
    cli(
        "forget",
        tmp_path / "clf",
        "--ids",
        tmp_path / "forget.txt",
        "--method",
        "finetune",
        "--out",
        tmp_path / "f",
        "--epochs",
        "0.5",
    )
    out = cli("forget", "--verify", tmp_path / "f").stderr
    assert "average gap" in out and "retrain" in out
    log = cli("forget", "--log", tmp_path / "clf").stderr
    assert log.count("complete") >= 2 and "finetune" in log  # the request and its retrained reference
    assert "complete (approximate)" in log and "complete (exact)" in log and "(verify's reference)" in log
    p = cli("forget", "--log", tmp_path / "nope", check=False)
    assert p.returncode == 2 and "is not a run" in p.stderr
    p = cli("forget", tmp_path / "clf", "--class", "nope", "--method", "ga", "--out", tmp_path / "g", check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr


@pytest.mark.slow
def test_selftrain_from_the_command_line(tmp_path, fmnist_small):
    out = tmp_path / "st"
    args = ["selftrain", "--task", fmnist_small.path, "--out", out, "--shots", "3", "--size", "tiny"]
    cli(*args, "--epochs", "0.5", "--batch-size", "8", "--ratio", "2", "--precision", "fp32", "--optimizer", "sgd")
    config = json.loads((out / "config.json").read_text())
    assert config["method"]["name"] == "fixmatch" and config["train"]["precision"] == "fp32"
    assert config["train"]["optimizer"] == "sgd"
    assert len((out / "labelled-ids.txt").read_text().splitlines()) == 30
    p = cli("selftrain", "--task", fmnist_small.path, "--out", tmp_path / "x", "--threshold", "2", check=False)
    assert p.returncode == 2 and "--threshold must be in" in p.stderr and "Traceback" not in p.stderr
    p = cli("selftrain", "--task", fmnist_small.path, "--out", tmp_path / "y", "--optimizer", "adam", check=False)
    assert p.returncode == 2 and "optimizer must be adamw or sgd" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("reported", [False, True])
def test_ctrl_c_outside_training_says_so_once(reported, monkeypatch):
    """Ctrl-C where no training loop catches it (distil's teacher outputs, an import) used to end
    the command with exit code 130 and not a word; training reports its own step and how to
    resume, so the command adds nothing then."""
    import unlabeled.cli as cli_module
    from unlabeled._console import console

    def interrupted() -> None:
        e = KeyboardInterrupt()
        if reported:
            e.reported = True  # as the trainer marks the one it has reported
        raise e

    monkeypatch.setattr(cli_module, "_run_app", interrupted)
    monkeypatch.setattr(cli_module, "tune_process", lambda: None)
    monkeypatch.setattr(cli_module.signal, "signal", lambda *a: None)  # pytest's own SIGTERM stays
    with console.capture() as said, pytest.raises(SystemExit) as stop:  # whatever stream the console holds
        cli_module.main()
    assert stop.value.code == 130
    assert ("interrupted" in said.get()) is not reported


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["pretrain"], "unlabeled pretrain: Missing argument 'data'."),
        (["pretrain", "data", "--bogus"], "No such option: --bogus"),
        (["pretrain", "data", "--minutes", "abc"], "Invalid value for '--minutes'"),
        (["no-such-command"], "No such command 'no-such-command'."),
    ],
)
def test_a_usage_error_is_one_line_and_exit_code_2(cli, args, said):
    """click printed a six-line box for these (usage, a hint, a frame around the message)."""
    code, lines = cli(*args)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and said in lines[0], lines


def test_version_is_printed(cli, capsys):
    code, _ = cli("--version")
    from unlabeled import __version__

    assert code == 0 and capsys.readouterr().out.strip() == f"unlabeled {__version__}"


def test_the_package_and_the_command_import_no_pytorch_until_a_command_runs():
    """``import unlabeled``, ``--help`` and ``--version`` cost typer and rich, not PyTorch and
    scikit-learn (seconds): the API's names and each command's code are imported on first use."""
    code = (
        "import sys\nimport unlabeled, unlabeled.cli\n"
        "sys.argv[1:] = ['--help']\n"
        "try:\n    unlabeled.cli._run_app()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'sklearn', 'numpy', 'pyarrow') if m in sys.modules))\n"
        "unlabeled.Run\nprint('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["[]", "True"], done.stdout  # and a name imports what it needs


def test_api_names_that_are_also_subpackages_stay_the_functions():
    """``unlabeled.bench`` is a function and a subpackage: importing ``unlabeled.bench.jobs``
    first made ``ul.bench(run)`` call a module (a TypeError) once the names loaded lazily."""
    code = (
        "import unlabeled as ul\nimport unlabeled.bench.jobs, unlabeled.select.api, unlabeled.forget.api, "
        "unlabeled.curate.pipeline\n"
        "print(all(callable(getattr(ul, n)) for n in ('bench', 'select', 'forget', 'curate', 'scaling')))\n"
        "from unlabeled.bench import jobs\nprint(jobs.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "unlabeled.bench.jobs"], done.stderr


def test_help_and_no_arguments_still_show_the_usage(cli, capsys):
    for args in ([], ["--help"], ["pretrain", "--help"]):
        code, lines = cli(*args)
        shown = "\n".join(lines) + capsys.readouterr().out  # typer's help prints on its own console
        assert code in (0, 2) and "Usage" in shown and not any(x.startswith("error:") for x in lines), (args, shown)


STOP_AT_IMPORT = (  # a Ctrl-C that lands while ``name`` is imported, deterministically
    "import sys\n"
    "class Stop:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == {name!r}:\n"
    "            raise KeyboardInterrupt\n"
    "sys.meta_path.insert(0, Stop())\n"
)


@pytest.mark.parametrize("stop_at", ["typer", "unlabeled._console"])
def test_ctrl_c_while_the_command_is_still_importing_is_one_line_not_a_traceback(stop_at):
    """The command's entry point imports the command (typer, rich) inside its Ctrl-C handler;
    the handler in ``unlabeled.cli.main`` is not in place until then. (A signal sent after a
    sleep no longer lands there: with lazy imports, ``--help`` is done in 0.2 s.)"""
    import importlib.metadata

    scripts = importlib.metadata.entry_points(group="console_scripts", name="unlabeled")
    assert [e.value for e in scripts] == ["unlabeled_command:main"]
    code = STOP_AT_IMPORT.format(name=stop_at) + "from unlabeled_command import main\nmain()\n"
    done = subprocess.run([sys.executable, "-c", code, "--help"], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and done.stderr == "interrupted (Ctrl-C)\n", (done.returncode, done.stderr)
    assert "Usage" not in done.stdout  # it stopped while importing, before the command ran


@pytest.mark.parametrize("stop_at", ["unlabeled._version", "typer"])
def test_ctrl_c_while_python_m_unlabeled_is_still_importing_is_one_line_not_a_traceback(stop_at):
    """``python -m unlabeled`` (what ``torchrun -m unlabeled`` runs) imports the package before
    ``__main__`` exists (``unlabeled._version``), then ``__main__`` imports the command
    (``typer``); runpy's own entry point for ``-m`` is driven here."""
    code = STOP_AT_IMPORT.format(name=stop_at) + (
        "import runpy\nsys.argv[:] = ['-m', '--help']\nrunpy._run_module_as_main('unlabeled')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and done.stderr == "interrupted (Ctrl-C)\n", (done.returncode, done.stderr)
    assert "Usage" not in done.stdout


@pytest.mark.parametrize("first_use", ["import unlabeled", "import unlabeled\nunlabeled.generate"])
def test_ctrl_c_while_importing_the_package_as_a_library_still_raises(first_use):
    """Only ``python -m`` turns it into the command's exit: a program that imports the package,
    or uses a name of its API for the first time (which imports it), gets its KeyboardInterrupt
    as from any other import."""
    stop_at = "unlabeled._version" if first_use == "import unlabeled" else "unlabeled.lm"
    code = (
        "import sys\n"
        "class Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {stop_at!r}:\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Stop())\n"
        "try:\n"
        + "".join(f"    {line}\n" for line in first_use.splitlines())
        + "except KeyboardInterrupt:\n    print('raised')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "raised\n", (done.returncode, done.stderr)


@pytest.mark.parametrize("reported", [False, True])
def test_ctrl_c_inside_a_command_says_so_though_typer_turns_it_into_an_exit(reported, monkeypatch, tmp_path):
    """typer catches a KeyboardInterrupt raised in a command and exits 130 without a word; the
    command's own handler then never saw it, so Ctrl-C in curate or embed said nothing."""
    import unlabeled.cli as cli_module
    from unlabeled._console import console

    def interrupted(*args, **kwargs) -> None:
        e = KeyboardInterrupt()
        if reported:
            e.reported = True
        raise e

    monkeypatch.setattr(cli_module, "run_demo", interrupted)
    monkeypatch.setattr(cli_module, "tune_process", lambda: None)
    monkeypatch.setattr(cli_module.signal, "signal", lambda *a: None)
    monkeypatch.setattr(sys, "argv", ["unlabeled", "demo", "--out", str(tmp_path / "demo")])
    with console.capture() as said, pytest.raises(SystemExit) as stop:
        cli_module.main()
    assert stop.value.code == 130
    assert ("interrupted" in said.get()) is not reported


def test_settings_and_whole_numbers_refuse_what_is_not_finite(tmp_path):
    """JSON reads NaN, Infinity and 1e999 as numbers: a temperature of infinity trained nothing
    and wrote "Infinity" (not JSON) into config.json; ``--shots nan`` ended in int()'s traceback."""
    from unlabeled._console import UnlabeledError
    from unlabeled.bench.suites import load_suite
    from unlabeled.cli import _whole, parse_settings

    for item in ("temperature=1e999", "noise_std=NaN", "crop_scale=0.3,Infinity", "x=-Infinity"):
        with pytest.raises(UnlabeledError, match="settings take finite numbers"):
            parse_settings([item], "--option")
    assert parse_settings(["temperature=0.2", "name=NaNa"], "--option") == {"temperature": 0.2, "name": "NaNa"}
    for bad in (float("nan"), float("inf")):
        with pytest.raises(UnlabeledError, match="takes whole numbers"):
            _whole([1.0, bad], "--shots")
    (tmp_path / "list.toml").write_text("task = [1, 2]\n")
    (tmp_path / "latin1.toml").write_bytes(b"\xff\xfe[[task]]\n")
    with pytest.raises(UnlabeledError, match="task 1 is 1, not a"):
        load_suite(tmp_path / "list.toml")
    with pytest.raises(UnlabeledError, match="not UTF-8 text"):
        load_suite(tmp_path / "latin1.toml")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--minutes", "-1"], "--minutes must be a positive number"),
        (["--seeds", "0"], "--seeds must be a whole number"),
        (["--precision", "bogus"], "--precision must be"),
    ],
)
def test_the_demo_checks_its_options_before_importing_anything(cli, args, said, tmp_path):
    """They were checked after the 54 MB import (the seeds after the 11-minute pretraining)."""
    code, lines = cli("demo", "--out", tmp_path / "demo", *args)
    assert code == 2 and said in lines[-1] and not (tmp_path / "demo").exists(), lines


def test_an_error_met_by_every_torchrun_process_is_printed_once(tmp_path):
    """Under torchrun each process met the same bad input and printed it: one line per
    process. Two processes of one launcher (this test's process stands in for torchrun) print
    it once and both exit 2; another message is still printed."""

    def start(rank: int, missing: str) -> subprocess.Popen:
        env = {**ENV, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank)}
        args = [sys.executable, "-m", "unlabeled", "pretrain", str(tmp_path / missing), "--out", str(tmp_path / "r")]
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    same = [start(0, "nothing-here"), start(1, "nothing-here")]
    outs = [p.communicate(timeout=120)[0] for p in same]
    assert [p.returncode for p in same] == [2, 2]
    said = "".join(outs)
    assert said.count("error:") == 1 and "nothing-here" in said
    other = start(1, "nor-here")
    assert "nor-here" in other.communicate(timeout=120)[0] and other.returncode == 2


def test_options_that_would_be_ignored_or_paths_that_would_misfire_are_refused_in_one_line(cli, digits, tmp_path):
    """From a review: an empty --out wrote a run into the current folder; --log and --verify,
    curate --explain and embed without --out dropped other options; select --encoder did
    nothing for random; --out inside the run forgot from, or inside curate's source (refused
    after the whole curation); --class ² was a traceback; a --group-pattern that matched no
    file left each file its own group."""
    import numpy as np

    import unlabeled as ul

    clf = ul.finetune(None, digits, tmp_path / "clf", epochs=0.05)
    checks = [
        (["pretrain", digits.path, "--out", ""], "--out is empty"),
        (["import", "", tmp_path / "d"], "source to import is ''"),
        (["forget", "--log", clf.path, "--ids", tmp_path / "nope.txt"], "--log takes no --ids"),
        (["forget", clf.path, "--out", clf.path / "f", "--class", "1"], "is inside"),
        (["forget", clf.path, "--out", tmp_path / "f", "--class", "²"], "does not exist"),
        (
            ["select", digits.path, "--out", tmp_path / "s", "--budget", "3", "--encoder", clf.path],
            "takes no --encoder",
        ),
        (["embed", clf.path, digits.path, "--overwrite"], "--overwrite replaces an --out file"),
        (["curate", "--explain", digits.path, "--workers", "2"], "--explain takes no --workers"),
    ]
    for args, said in checks:
        code, lines = cli(*args)
        assert code == 2 and said in lines[-1], (args, lines)
    assert not (tmp_path / "f").exists() and not (clf.path / "f").exists()
    docs = tmp_path / "docs"
    w = ul.data.collection.CollectionWriter(docs, "text", (), "object")
    w.add(["one two three four"] * 3, ["a", "b", "c"])
    w.close()
    code, lines = cli("curate", docs, "--out", docs / "clean", "--steps", "dedup")
    assert code == 2 and "inside the source" in lines[-1] and not list(docs.glob(".clean*"))
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(3):
        np.save(imgs / f"{i}.npy", np.zeros((8, 8), np.float32) + i)
    code, lines = cli("import", imgs, tmp_path / "i", "--group-pattern", "patient-(\\d+)")
    assert code == 2 and "matches none" in lines[-1]
