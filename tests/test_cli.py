"""The ``zarrflow`` console script, run for real in subprocesses.

Each subprocess pays the import of numpy, dask and zarrflow, so independent
invocations run side by side (:func:`run_cli` takes several command lines).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import zarrflow as zf
from zarrflow import cli
from zarrflow.errors import ZarrflowError


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
    (result,) = run_cli(["demo", "--repeat", "1"])
    out = _ok(result).stdout
    assert "Seed array" in out and "shape (1000, 1000), chunks (100, 100), 100 chunks" in out
    assert "| write a[:] = data" in out and "| read a[:]" in out
    for n in (1, 2, 4, 8):
        for ordered in ("yes", "no"):
            assert re.search(rf"\| parallel={n} +\| {ordered} +\| [\d.]+ ms", out), (n, ordered)
    assert re.search(r"\| sequential +\| yes +\| [\d.]+ ms .*\| 1\.00x", out)
    assert re.search(r"\| to_zarr\(a.to_dask\(\)\) write back +\| 100 +\| [\d.]+ ms", out)
    assert "Checked: every stream, the map's sums and the written copy equal" in out
    # progress goes to stderr, one finished line per bar when not on a terminal
    assert "\r" not in out and "[#" not in out and "\r" not in result.stderr
    bars = [line for line in result.stderr.splitlines() if "100%" in line]
    assert [b.split()[0] for b in bars] == ["chunk_stream", "parallel_chunk_map", "to_zarr"]


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
    array, group = run_cli(
        ["copy", src, dst, "--zarr-format", "3", "--chunks", "250,150", "--compressor", "blosc"],
        ["copy", v3_group, zipped, "--zarr-format", "2", "--quiet"],
    )
    out = _ok(array).stdout
    assert f"copied {src} -> {dst}" in out
    assert "from: array, Zarr v2, chunks (100, 100), codecs: zstd" in out
    assert "to:   array, Zarr v3, chunks (250, 150), codecs: bytes, blosc" in out
    assert re.search(r"^copy +\[#+\] 100%", array.stderr, re.M), array.stderr
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
    (result,) = run_cli(["stats", src])
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
    assert re.search(r"^stats +\[#+\] 100% 12/12", result.stderr, re.M), result.stderr


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
        (["stats", "{group}"], "is a group, not an array"),
        (["copy", "{array}", "{array}"], "exists already; add --overwrite"),
        (["copy", "{array}", "{tmp}/o.zarr", "--chunks", "0,x"], "--chunks '0,x' is not a shape"),
        (["info", "gcs://bucket/a.zarr"], "gcsfs"),
    ],
    ids=["group-not-array", "existing-target", "bad-shape", "missing-package"],
)
def test_more_errors_in_process(argv, message, tmp_path, v2_array, v3_group, capsys) -> None:
    if "gcs://" in argv[1] and importlib.util.find_spec("gcsfs"):
        pytest.skip("gcsfs is installed here")
    paths = {"group": v3_group, "array": v2_array[0], "tmp": tmp_path}
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
