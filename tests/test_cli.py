"""The ``zarrflow`` console script, run for real in subprocesses.

Each subprocess pays the import of numpy, dask and zarrflow, so independent
invocations run side by side (:func:`run_cli` takes several command lines).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pty
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import dask
import numpy as np
import pytest

import zarrflow as zf
from zarrflow import cli
from zarrflow.cli import app
from zarrflow.errors import ZarrflowError
from zarrflow.integrations.copying import copy_node


def _script() -> str:
    path = shutil.which("zarrflow")
    if path is None:
        pytest.fail("the zarrflow console script is not installed (pip install -e .)")
    return path


def run_cli(*argvs: Sequence[str], cwd: Path | None = None) -> list[subprocess.CompletedProcess]:
    """Run ``zarrflow ARGV`` once per argument list, all at once; wait for every one.

    Parameters
    ----------
    *argvs
        One argument list per invocation.
    cwd
        The working directory.

    Returns
    -------
    list of subprocess.CompletedProcess
        In the order given, with text ``stdout`` and ``stderr``.
    """
    script = _script()
    procs = [
        subprocess.Popen(
            [script, *map(str, argv)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        for argv in argvs
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


@pytest.fixture
def v2_array(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A Zarr v2 float64 array with NaNs and attributes, 400×300 in 100×100 chunks."""
    data = np.arange(120_000, dtype="f8").reshape(400, 300) / 7
    data[0, :5] = np.nan
    path = tmp_path / "v2.zarr"
    a = zf.create(path, shape=data.shape, chunks=(100, 100), dtype="f8", zarr_format=2)
    a[:] = data
    a.attrs["title"] = "seed"
    return path, data


@pytest.fixture
def v3_group(tmp_path: Path) -> Path:
    """A Zarr v3 group with a subgroup and two arrays."""
    path = tmp_path / "g.zarr"
    g = zf.open_group(path, mode="w", attributes={"kind": "test"})
    g.create_group("sub").create_array("y", shape=(10,), chunks=(5,), dtype="f4")[:] = 1.5
    g.create_array("x", shape=(40,), chunks=(10,), dtype="i2")[:] = np.arange(40)
    return path


def test_demo_prints_its_tables_with_bars_kept_apart() -> None:
    (result,) = run_cli(["demo", "--repeat", "1", "--progress"])
    out = _ok(result).stdout
    assert "Seed array" in out and "shape (1000, 1000), chunks (100, 100), 100 chunks" in out
    assert "| write a[:] = data" in out and "| read a[:]" in out
    for n in (1, 2, 4, 8):
        for ordered in ("yes", "no"):
            assert re.search(rf"\| parallel={n} +\| {ordered} +\| [\d.]+ ms", out), (n, ordered)
    assert re.search(r"\| sequential +\| yes +\| [\d.]+ ms .*\| 1\.00x", out)
    assert re.search(r"\| to_zarr\(a.to_dask\(\)\) write back +\| 100 +\| [\d.]+ ms", out)
    assert "Checked: every stream, the map's sums and the written copy equal" in out
    # progress goes to stderr, one finished line per bar when not on a terminal, counted in
    # the chunks the text speaks of (runs x 100 chunks), with the rate
    assert "\r" not in out and "[#" not in out and "\r" not in result.stderr
    bars = [line for line in result.stderr.splitlines() if "100%" in line]
    assert [b.split()[0] for b in bars] == ["chunk_stream", "parallel_chunk_map", "to_zarr"]
    for bar, runs in zip(bars, (18, 2, 2), strict=True):
        n = runs * 100
        assert re.search(rf"\({runs} runs x 100 chunks\) +\[#+\] 100% {n}/{n} chunks ", bar), bar
        assert re.search(r" \d+ chunks/s in [\d.]+s$", bar), bar


def test_info_describes_arrays_and_groups(v2_array, v3_group) -> None:
    array, group = run_cli(["info", v2_array[0]], ["info", v3_group])
    rows = dict(re.findall(r"^(\S.*?) +: (.*)$", _ok(array).stdout, re.M))
    expected = {
        "Zarr format": "2",
        "Shape": "(400, 300)",
        "Chunks": "(100, 100)",
        "Data type": "float64",
        "Fill value": "0.0",
        "Codecs": "zstd",
        "Chunks stored": "12 / 12",
    }
    assert {k: rows.get(k) for k in expected} == expected, rows
    assert re.fullmatch(r"[\d.]+ KiB", rows["Bytes stored"]), rows
    assert float(rows["Compression ratio"]) > 1, rows
    out = _ok(group).stdout
    assert "zarrflow.Group" in out and re.search(r"^Zarr format +: 3$", out, re.M), out
    assert "├── sub" in out and "│   └── y (10,) float32" in out and "└── x (40,) int16" in out


def test_copy_converts_v2_to_v3_and_rechunks_and_group_to_zip(tmp_path, v2_array, v3_group) -> None:
    src, data = v2_array
    dst, zipped = tmp_path / "v3.zarr", tmp_path / "g.zip"
    convert = ["--zarr-format", "3", "--chunks", "250,150", "--compressor", "blosc"]
    array, group = run_cli(
        ["copy", src, dst, *convert, "--progress"],
        ["copy", v3_group, zipped, "--zarr-format", "2", "--quiet"],
    )
    out = _ok(array).stdout
    assert f"copied {src} -> {dst}" in out
    assert "from: array, Zarr v2, chunks (100, 100), codecs: zstd" in out
    assert "to:   array, Zarr v3, chunks (250, 150), codecs: bytes, blosc" in out
    # the bar counts bytes: 400 x 300 float64 = 960,000 bytes
    bar = r"^copy +\[#+\] 100% 960\.0 kB/960\.0 kB [\d.]+ .?B/s in "
    assert re.search(bar, array.stderr, re.M), array.stderr
    b = zf.open_array(dst, mode="r")
    assert (b.zarr_format, b.chunks, b.attrs["title"]) == (3, (250, 150), "seed")
    np.testing.assert_array_equal(b[:], data)
    zarr = pytest.importorskip("zarr")  # the oracle reads the converted copy the same
    np.testing.assert_array_equal(zarr.open_array(str(dst), mode="r")[:], data)

    _ok(group)
    assert group.stderr == ""  # --quiet
    g = zf.open_group(f"zip://{zipped}", mode="r")
    assert g.zarr_format == 2 and g.attrs["kind"] == "test"
    np.testing.assert_array_equal(g["x"][:], np.arange(40))
    np.testing.assert_array_equal(g["sub"]["y"][:], np.full(10, 1.5, "f4"))


def test_copy_shards_or_says_clearly_it_cannot(tmp_path, v2_array) -> None:
    src, data = v2_array
    dst = tmp_path / "sharded.zarr"
    (result,) = run_cli(["copy", src, dst, "--zarr-format", "3", "--shards", "200,200"])
    if result.returncode == 0:  # sharding is available in this build
        b = zf.open_array(dst, mode="r")
        assert (b.chunks, b.shards) == ((100, 100), (200, 200))  # zarr-python's meaning
        assert (b.metadata.chunks, b.metadata.inner_chunks) == ((200, 200), (100, 100))
        np.testing.assert_array_equal(b[:], data)
    else:
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "sharding is not available" in result.stderr, result.stderr
        assert not dst.exists()


def test_stats_match_numpy(v2_array) -> None:
    src, data = v2_array
    (result,) = run_cli(["stats", src, "--progress"])
    values = dict(re.findall(r"^ *(\w+): (\S+)$", _ok(result).stdout, re.M))
    assert int(values["count"]) == np.count_nonzero(~np.isnan(data))
    assert int(values["nan_count"]) == 5
    for key, expected in (
        ("min", np.nanmin(data)),
        ("max", np.nanmax(data)),
        ("mean", np.nanmean(data)),
        ("std", np.nanstd(data)),
    ):
        assert float(values[key]) == pytest.approx(expected, rel=1e-9), key
    assert re.search(r"^stats \(stored chunks\) +\[#+\] 100% 12/12 chunks ", result.stderr, re.M), (
        result.stderr
    )


def _one_error_line(stderr: str, command: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"zarrflow {command}: error: "), lines[0]
    return lines[0]


def test_errors_are_one_line_and_nonzero(tmp_path) -> None:
    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    (bad / "zarr.json").write_text('{"zarr_format": 3, "node_type": "array"')  # truncated
    cases = {
        "missing path": (["info", tmp_path / "missing.zarr"], "no array or group at"),
        "bad URL": (["stats", "nosuchproto://bucket/a.zarr"], "nosuchproto"),
        "unreadable array": (["copy", bad, tmp_path / "out.zarr"], "is not JSON"),
    }
    results = run_cli(*(argv for argv, _ in cases.values()))
    for (name, (argv, message)), result in zip(cases.items(), results, strict=True):
        assert result.returncode == 1, (name, result)
        assert message in _one_error_line(result.stderr, argv[0]), name
    assert not (tmp_path / "out.zarr").exists()


def test_debug_shows_the_traceback(tmp_path) -> None:
    debug, bench_help = run_cli(["--debug", "info", tmp_path / "missing.zarr"], ["bench", "--help"])
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "NodeNotFoundError: no array or group at" in debug.stderr
    assert "--repeat" in _ok(bench_help).stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["stats", "{group}"], "is a group, not an array; name one of its arrays with --path"),
        (["copy", "{array}", "{group}"], "exists already; add --overwrite"),
        (["copy", "{array}", "{array}", "--overwrite"], "overlaps the source"),
        (["copy", "{array}", "{tmp}/o.zarr", "--chunks", "0,x"], "--chunks '0,x' is not a shape"),
        (["info", "gcs://bucket/a.zarr"], "gcsfs"),
    ],
    ids=["group-not-array", "existing-target", "same-target", "bad-shape", "missing-package"],
)
def test_more_errors_in_process(argv, message, tmp_path, v2_array, v3_group, capsys) -> None:
    if "gcs://" in argv[1] and importlib.util.find_spec("gcsfs"):
        pytest.skip("gcsfs is installed here")
    paths = {"group": v3_group, "array": v2_array[0], "tmp": tmp_path}
    # gcs:// needs gcsfs only on the fsspec backend (obstore serves it by default)
    with dask.config.set({"zarrflow.object_store": "fsspec"}):
        assert cli.main([a.format(**paths) for a in argv]) == 1
    assert message in _one_error_line(capsys.readouterr().err, argv[0])


def test_usage_errors_exit_2_and_help_lists_the_commands(capsys) -> None:
    for argv in (["copy", "only-one-argument"], ["demo", "--repeat", "0"], []):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
    assert "not a positive whole number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("demo", "info", "copy", "stats", "bench"):
        assert command in out


# in-process: what needs a stand-in (sharding missing at runtime) -----------------------
def test_shards_give_a_clear_error_when_sharding_is_missing(
    monkeypatch, tmp_path, v2_array, capsys
) -> None:
    import zarrflow.integrations.copying as copying

    real_create = copying.create

    def create_without_sharding(*args, **kwargs):
        if kwargs.get("shards") is not None:
            raise ImportError("cannot import name 'wrap_in_sharding'")
        return real_create(*args, **kwargs)

    monkeypatch.setattr(copying, "create", create_without_sharding)
    with pytest.raises(ZarrflowError, match=r"cannot write shards \[4, 4\]: sharding is not"):
        copying.check_sharding((4, 4), (2, 2))
    dst = tmp_path / "s.zarr"
    argv = ["copy", str(v2_array[0]), str(dst), "--zarr-format", "3", "--shards", "200,200"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sharding is not available in this zarrflow" in err[0]
    assert not dst.exists()


def test_copy_keeps_codecs_across_formats(tmp_path) -> None:
    from zarrflow.integrations.copying import copy_node

    data = np.arange(600, dtype="i4").reshape(20, 30)
    src = tmp_path / "src.zarr"
    a = zf.create(
        src,
        shape=(20, 30),
        chunks=(10, 10),
        dtype="i4",
        zarr_format=2,
        compressor="lz4",
        filters=[("delta", {"dtype": "<i4"})],
        fill_value=7,
    )
    a[:] = data
    v3 = copy_node(src, tmp_path / "v3.zarr", zarr_format=3)
    names = [c["name"] for c in v3.metadata.codecs]
    assert names == ["numcodecs.delta", "bytes", "numcodecs.lz4"] and v3.fill_value == 7
    back = copy_node(tmp_path / "v3.zarr", tmp_path / "back.zarr", zarr_format=2)
    assert back.metadata.compressor["id"] == "lz4"
    assert [f["id"] for f in back.metadata.filters] == ["delta"]
    meta = json.loads((tmp_path / "back.zarr" / ".zarray").read_text())
    assert meta["fill_value"] == 7
    for copy in (v3, back):
        np.testing.assert_array_equal(copy[:], data)


# -- issue 16: the CLI feels finished (each item in a subprocess) -----------------------------
def _python_m(*argv: str) -> subprocess.CompletedProcess:
    """``python -m zarrflow ARGV`` (the other way in), with this interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "zarrflow", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_version_and_help_for_every_command_and_argument() -> None:
    commands = ("demo", "info", "copy", "stats", "bench")
    version, *helps = run_cli(["--version"], *([c, "--help"] for c in commands))
    assert _ok(version).stdout.strip() == f"zarrflow {zf.__version__}"
    assert _python_m("--version").stdout.strip() == f"zarrflow {zf.__version__}"
    parser = app._parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, result in zip(commands, helps, strict=True):
        sub = subparsers.choices[command]
        assert sub.description and len(sub.description) > 40, command
        assert " ".join(sub.description.split()[:4]) in " ".join(_ok(result).stdout.split())
        for action in sub._actions:
            assert action.help and action.help.strip(), (command, action.dest)
            shown = action.option_strings[0] if action.option_strings else action.metavar
            assert shown in result.stdout, (command, shown)
    assert all(a.help for a in parser._actions), "top-level arguments without help"


def test_progress_only_on_a_terminal_or_when_asked(v2_array) -> None:
    src = str(v2_array[0])
    plain, asked = run_cli(["stats", src], ["stats", src, "--progress"])
    assert _ok(plain).stderr == ""  # not a terminal, not asked: no bar
    assert re.search(r"12/12 chunks \d+ chunks/s in [\d.]+s$", _ok(asked).stderr.strip())
    primary, secondary = pty.openpty()  # a real terminal for stderr
    try:
        proc = subprocess.Popen(
            [_script(), "stats", src], stdout=subprocess.PIPE, stderr=secondary, text=True
        )
        os.close(secondary)
        out, _ = proc.communicate(timeout=120)
        seen = b""
        while select.select([primary], [], [], 5)[0]:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
    assert proc.returncode == 0 and "count" in out
    text = seen.decode()
    assert "\r" in text and re.search(r"100% 12/12 chunks \d+ chunks/s in [\d.]+s", text), text


def test_members_by_path_or_url_and_a_group_names_its_arrays(tmp_path, v3_group) -> None:
    zipped = tmp_path / "g.zip"
    copy_node(v3_group, zipped)
    results = run_cli(
        ["info", v3_group, "--path", "sub/y"],
        ["stats", f"{v3_group}/x"],
        ["stats", zipped, "--path", "sub/y"],
        ["stats", f"{zipped}/x"],
        ["stats", v3_group],
        ["stats", v3_group, "--path", "sub"],
    )
    info, by_url, zip_path, zip_url, group, subgroup = results
    assert re.search(r"^Shape +: \(10,\)$", _ok(info).stdout, re.M), info.stdout
    for result, n, mean in ((by_url, 40, 19.5), (zip_path, 10, 1.5), (zip_url, 40, 19.5)):
        values = dict(re.findall(r"^ *(\w+): (\S+)$", _ok(result).stdout, re.M))
        assert (int(values["count"]), float(values["mean"])) == (n, mean), result.args
    line = _one_error_line(group.stderr, "stats")
    assert group.returncode == 1 and "name one of its arrays with --path" in line
    assert line.endswith(": sub/y, x"), line
    assert subgroup.returncode == 1 and _one_error_line(subgroup.stderr, "stats").endswith(": y")


def test_copy_onto_itself_is_refused_and_a_failed_copy_leaves_nothing(tmp_path, v2_array) -> None:
    src = v2_array[0]
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    broken = tmp_path / "broken.zarr"
    shutil.copytree(src, broken)
    (broken / "2.1").write_bytes(b"garbage, not zstd")
    same, inside, failed = run_cli(
        ["copy", src, src, "--overwrite"],
        ["copy", src, src / "c", "--quiet"],
        ["copy", broken, tmp_path / "out.zarr"],
    )
    for result in (same, inside):
        assert result.returncode == 1, result
        assert "overlaps the source" in _one_error_line(result.stderr, "copy")
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
    assert failed.returncode == 1
    line = _one_error_line(failed.stderr, "copy")
    assert "failed (nothing was written there)" in line and "'2.1'" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.zarr", "v2.zarr"]


def test_huge_arrays_give_one_line_or_stream(tmp_path) -> None:
    huge = zf.create(tmp_path / "huge.zarr", shape=(10**15,), chunks=(10**6,), dtype="f8")
    huge[:3] = [1.0, 2.0, 6.0]
    zf.create(tmp_path / "one.zarr", shape=(10**15,), chunks=(10**15,), dtype="f8")
    stats, copy_many, copy_big, stats_big = run_cli(
        ["stats", tmp_path / "huge.zarr"],
        ["copy", tmp_path / "huge.zarr", tmp_path / "out.zarr"],
        ["copy", tmp_path / "one.zarr", tmp_path / "out1.zarr"],
        ["stats", tmp_path / "one.zarr"],
    )
    values = dict(re.findall(r"^ *(\w+): (\S+)$", _ok(stats).stdout, re.M))
    assert int(values["count"]) == 10**15 and float(values["max"]) == 6.0
    assert float(values["mean"]) == pytest.approx(9.0 / 10**15)
    assert "1000000000 chunks, 1 stored and read" in stats.stdout
    assert copy_many.returncode == 1
    assert "1,000,000,000 chunks" in _one_error_line(copy_many.stderr, "copy")
    assert copy_big.returncode == 1
    assert "more than half of this machine's memory" in _one_error_line(copy_big.stderr, "copy")
    assert int(dict(re.findall(r"^ *(\w+): (\S+)$", _ok(stats_big).stdout, re.M))["count"]) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.zarr", "one.zarr"]


def test_copy_of_an_xarray_dataset_opens_identical(tmp_path) -> None:
    xr = pytest.importorskip("xarray")
    import pandas as pd

    values = np.arange(30, dtype="f8").reshape(10, 3)
    values[2, 1] = np.nan
    ds = xr.Dataset(
        {"rain": (("time", "station"), values, {"units": "mm", "note": "a float with NaN"})},
        coords={
            "time": pd.date_range("2025-01-01", periods=10, freq="h"),
            "station": [7, 8, 9],
        },
        attrs={"source": "test"},
    )
    ds["rain"].encoding["_FillValue"] = np.nan
    pairs = [(2, 3), (3, 2), (2, 2), (3, 3)]
    for src_format, _ in pairs:
        ds.to_zarr(tmp_path / f"v{src_format}.zarr", zarr_format=src_format, mode="w")
    argvs = [
        ["copy", tmp_path / f"v{s}.zarr", tmp_path / f"{s}to{d}.zarr", "--zarr-format", str(d)]
        for s, d in pairs
    ]
    for (s, d), result in zip(pairs, run_cli(*argvs), strict=True):
        _ok(result)
        with (
            xr.open_dataset(tmp_path / f"v{s}.zarr", engine="zarr") as expected,
            xr.open_dataset(tmp_path / f"{s}to{d}.zarr", engine="zarr") as got,
        ):
            xr.testing.assert_identical(got, expected)


def test_demo_dashboard_stays_up_until_ctrl_c() -> None:
    proc = subprocess.Popen(
        [_script(), "demo", "--dashboard", "--repeat", "1", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True)
    reader.start()
    try:
        found = _wait_for_line(lines, r"Dask dashboard: (http://127\.0\.0\.1:\d+/\S*)", 120)
        link = found.group(1)
        with urllib.request.urlopen(link, timeout=30) as response:
            page = response.read().decode()
        assert response.status == 200 and "<html" in page.lower(), page[:200]
        _wait_for_line(lines, r"Press Ctrl-C to stop it", 300)
        assert proc.poll() is None  # the demo is done; the cluster keeps running
        with urllib.request.urlopen(link, timeout=30) as response:
            assert response.status == 200
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=30)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    rest = "".join(iter(lambda: lines.get_nowait() if not lines.empty() else "", ""))
    assert proc.returncode in (0, 130), err
    assert "Stopping the cluster." in rest and "Traceback" not in err, (rest, err)


def _wait_for_line(lines: queue.Queue[str], pattern: str, timeout: float) -> re.Match:
    """Take lines from ``lines`` until one matches ``pattern`` (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        seen.append(line)
        match = re.search(pattern, line)
        if match:
            return match
    pytest.fail(f"no line matching {pattern!r} within {timeout} s; saw:\n{''.join(seen)}")


def test_an_unexpected_failure_is_one_line_too(monkeypatch, capsys, v2_array) -> None:
    from zarrflow.cli import commands

    def broken(args):
        raise RuntimeError("Nanny failed\nto start")

    monkeypatch.setattr(commands, "info", broken)
    assert cli.main(["info", str(v2_array[0])]) == 1
    line = _one_error_line(capsys.readouterr().err, "info")
    assert line.endswith("RuntimeError: Nanny failed to start (--debug shows the traceback)")
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "info", str(v2_array[0])])


def test_cli_says_chunks_are_inner_and_counts_shards(tmp_path) -> None:
    path = str(tmp_path / "sharded.zarr")
    a = zf.create(path, shape=(40, 30), chunks=(5, 5), shards=(20, 15), dtype="f4")
    a[:] = 1.0
    info, stats = run_cli(["info", path], ["stats", path, "--quiet"])
    assert info.returncode == 0 and stats.returncode == 0, (info.stderr, stats.stderr)
    assert re.search(r"^Shards +: \(20, 15\)$", info.stdout, re.M), info.stdout
    assert re.search(r"^Inner chunks +: \(5, 5\)$", info.stdout, re.M), info.stdout
    assert re.search(r"^Shards stored +: 4 / 4$", info.stdout, re.M), info.stdout
    assert "48 chunks (inner; 4 shards)" in stats.stdout, stats.stdout
    assert re.search(r"count: 1200$", stats.stdout, re.M), stats.stdout


# -- issue 15: --profile --------------------------------------------------------------------
def _profile_rows(stderr: str) -> dict[tuple[str, str], int]:
    """(operation, phase) -> chunks, from the table --profile prints on stderr."""
    rows = re.findall(r"^\| (\w+) \| (\w+) \| [^|]* \| (\d+) \|", stderr, re.M)
    return {(op, phase): int(n) for op, phase, n in rows}


def test_profile_prints_where_the_time_went(tmp_path, v2_array) -> None:
    src, _ = v2_array
    copied, stats, bench = run_cli(
        ["copy", src, tmp_path / "p.zarr", "--zarr-format", "3", "--profile", "--quiet"],
        ["stats", src, "--profile", "--quiet"],
        ["bench", "--repeat", "1", "--profile"],
    )
    for result, command in ((copied, "copy"), (stats, "stats"), (bench, "bench")):
        assert f"zarrflow {command}: where the time went" in _ok(result).stderr, result.stderr
        assert "| operation | phase |" not in result.stdout  # the table goes to stderr only
    rows = _profile_rows(copied.stderr)
    assert rows[("write", "encode")] == 12 and rows[("write", "storage")] == 12
    assert sum(n for (op, phase), n in rows.items() if phase == "decode" and op != "write") == 12
    assert (
        sum(n for (_, phase), n in _profile_rows(stats.stderr).items() if phase == "decode") == 12
    )
    assert any(phase == "decode" for _, phase in _profile_rows(bench.stderr))
    assert np.array_equal(
        zf.open(tmp_path / "p.zarr", mode="r")[:], zf.open(src, mode="r")[:], equal_nan=True
    )
