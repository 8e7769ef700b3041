"""``profile --devices``: a real OpenSSH server on 127.0.0.1 and a device Python holding only
onnxruntime and numpy, reached through the system ssh client as a user's board would be."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_helpers import default_sigint
from sshd import SSHD, device_python, start_sshd, stop_sshd
from typer.testing import CliRunner

from codir_edge.cli.app import app
from codir_edge.core.errors import InputError
from codir_edge.devices.spec import from_url, parse_devices, select_devices

runner = CliRunner()
FAST = ["--threads", "1", "--batch-sizes", "1", "--seq-lens", "16", "--runs", "5", "--warmup", "1", "--quiet"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(SSHD).is_file() or subprocess.run(["which", "ssh"], capture_output=True).returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("sshd or ssh is missing: .ci/run installs openssh-server")
        pytest.skip("OpenSSH (sshd and ssh) is not installed")
    process, found = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield found
    stop_sshd(process)


@pytest.fixture(scope="module")
def device_py(tmp_path_factory) -> Path:
    python = device_python(tmp_path_factory.mktemp("device") / "venv")
    for module in ("codir_edge", "torch", "transformers", "tokenizers"):  # the runner must not need them
        alone = subprocess.run([python, "-c", f"import {module}"], capture_output=True, cwd=python.parent, env={})
        assert alone.returncode != 0, module
    return python


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def error_lines(result) -> list[str]:
    assert "Traceback" not in result.output, result.output
    return [line for line in result.output.splitlines() if line.startswith("error: ")]


def workdir_files(workdir: Path) -> list[str]:
    return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*") if p.is_file())


def test_two_devices_side_by_side_with_per_device_budgets_and_a_warm_cache(tmp_path, server, device_py, tiny_bundle):
    work_a, work_b = tmp_path / "work-a", tmp_path / "work b"  # a space in a path survives the remote shell
    devices = tmp_path / "devices.toml"
    devices.write_text(
        server.device_toml("board-a", str(device_py), str(work_a))
        + server.device_toml("board-b", str(device_py.parent / "python3"), str(work_b), env='{ OMP_NUM_THREADS = "1" }')
    )
    budgets = tmp_path / "budgets.toml"
    budgets.write_text(
        '[[budget]]\nname = "everywhere"\ntarget = "int8"\nseq_len = 16\nmax_size_mb = 100\n\n'
        '[[budget]]\nname = "impossible on b"\ntarget = "fp32"\ndevice = "board-b"\nseq_len = 16\np95_ms = 0.000001\n'
    )
    out = tmp_path / "report"
    args = ["profile", tiny_bundle, "--devices", devices, *FAST, "--budgets", budgets, "--cpus", "0"]
    reports = [
        "--json",
        out.with_suffix(".json"),
        "--junit",
        out.with_suffix(".xml"),
        "--markdown",
        out.with_suffix(".md"),
        "--plot",
        out.with_suffix(".png"),
    ]
    first = invoke(*args, *reports)
    assert first.exit_code == 1, first.output  # the board-b budget breaks, nothing else
    report = json.loads(out.with_suffix(".json").read_text())
    assert {(r["device"], r["target"]) for r in report["results"]} == {
        (d, t) for d in ("board-a", "board-b") for t in ("fp32", "int8")
    }
    assert all(r["p50_ms"] > 0 and r["peak_rss_mb"] > 0 for r in report["results"])
    for name in ("board-a", "board-b"):
        description = report["devices"][name]
        assert description["onnxruntime"] and description["cpu"] and description["logical_cores"] >= 1
        assert description["address"] == f"{server.user}@127.0.0.1:{server.port}"
    assert report["uploaded_bytes"]["board-a"] > 0 and report["uploaded_bytes"]["board-b"] > 0
    cases = {c.get("name"): c for c in ET.parse(out.with_suffix(".xml")).getroot().iter("testcase")}
    assert set(cases) == {"everywhere @ board-a", "everywhere @ board-b", "impossible on b @ board-b"}
    assert cases["impossible on b @ board-b"].find("failure") is not None
    assert cases["everywhere @ board-a"].get("classname") == "budgets.board-a.int8"
    assert out.with_suffix(".png").stat().st_size > 10_000  # one latency panel per device
    markdown = out.with_suffix(".md").read_text()
    assert "**board-a**" in markdown and "| board-b | fp32 |" in markdown
    assert all(f.startswith("cache/") and ".part-" not in f for f in workdir_files(work_a))  # nothing but the cache

    started = time.perf_counter()
    second = invoke(*args, "--json", tmp_path / "again.json")
    assert second.exit_code == 1, second.output
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["uploaded_bytes"] == {"board-a": 0, "board-b": 0}, "the warm cache sends nothing"
    assert "board-a: uploaded nothing (cache hit)" in second.output
    assert time.perf_counter() - started < 120

    cleaned = invoke("profile", tiny_bundle, "--devices", devices, "--device", "board-a", *FAST, "--clean-device")
    assert cleaned.exit_code == 0, cleaned.output
    assert workdir_files(work_a) == [] and workdir_files(work_b) != []


def test_each_fault_names_its_device_and_the_others_are_still_reported(tmp_path, server, device_py, tiny_bundle):
    bare = device_python(tmp_path / "bare", with_onnxruntime=False)
    wrong_key = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)], check=True)
    devices = tmp_path / "devices.toml"
    devices.write_text(
        server.device_toml("good", str(device_py), str(tmp_path / "w"))
        + server.device_toml("closed-port", str(device_py), str(tmp_path / "w"), port="1")
        + server.device_toml("wrong-key", str(device_py), str(tmp_path / "w"), identity_file=str(wrong_key))
        + server.device_toml("no-ort", str(bare), str(tmp_path / "w"))
        + server.device_toml("no-python", "/nonexistent/bin/python3", str(tmp_path / "w"))
    )
    result = invoke("profile", tiny_bundle, "--devices", devices, *FAST, "--json", tmp_path / "r.json")
    assert result.exit_code == 2, result.output
    errors = error_lines(result)
    assert len(errors) == 4, errors
    by_device = {line.split(":", 2)[1].strip(): line for line in errors}
    assert "cannot reach" in by_device["closed-port"] and "check host and port" in by_device["closed-port"]
    assert "refused authentication" in by_device["wrong-key"] and "identity_file" in by_device["wrong-key"]
    assert f"run '{bare} -m pip install onnxruntime numpy' there" in by_device["no-ort"]
    assert "/nonexistent/bin/python3 was not found" in by_device["no-python"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert {r["device"] for r in report["results"]} == {"good"} and len(report["results"]) == 2
    assert set(report["device_failures"]) == {"closed-port", "wrong-key", "no-ort", "no-python"}
    assert not report["passed"]


def _profile_in_background(args: list, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "codir_edge.cli", *map(str, args)]
    return subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=default_sigint)  # fmt: skip


def _wait_for_worker(workdir: Path, seconds: float = 60) -> int:
    """The pid of the runner's worker measuring from ``workdir`` on the device (this machine)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", f"{workdir}/cache/.*runner.py worker"], capture_output=True, text=True)
        if found.stdout.strip():
            return int(found.stdout.split()[0])
        time.sleep(0.1)
    raise AssertionError("the worker never started")


def test_timeout_a_killed_worker_and_ctrl_c(tmp_path, server, device_py, tiny_bundle):
    work = tmp_path / "work"
    devices = tmp_path / "devices.toml"
    devices.write_text(server.device_toml("board", str(device_py), str(work)))
    model = tiny_bundle / "model.int8.onnx"
    sweep = ["--threads", "1", "--batch-sizes", "1", "--seq-lens", "16", "--quiet", "--devices", devices]

    timed_out = invoke("profile", model, *sweep, "--runs", "100000000", "--timeout", "2")
    assert timed_out.exit_code == 2
    assert error_lines(timed_out) == [
        "error: board: model.int8.onnx (threads 1, batch 1, seq 16) exceeded the 2 s --timeout: raise --timeout, "
        "or lower --runs or --duration"
    ]

    unpinnable = invoke("profile", model, *sweep, "--runs", "5", "--cpus", "4095")
    assert unpinnable.exit_code == 2
    assert error_lines(unpinnable)[0].startswith("error: board: --cpus 4095 names CPUs it does not have (usable: [0")

    process = _profile_in_background(["profile", model, *sweep, "--duration", "60"], tmp_path / "killed.log")
    os.kill(_wait_for_worker(work), signal.SIGKILL)  # what the out-of-memory killer does
    assert process.wait(60) == 2
    log = (tmp_path / "killed.log").read_text()
    assert "error: board: the worker measuring model.int8.onnx" in log and "was killed by SIGKILL" in log, log

    report = tmp_path / "interrupted.json"
    process = _profile_in_background(
        ["profile", model, *sweep, "--duration", "60", "--json", report], tmp_path / "c.log"
    )
    worker = _wait_for_worker(work)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group, ssh included
    assert process.wait(60) == 130
    assert "error: board: interrupted" in (tmp_path / "c.log").read_text()
    assert json.loads(report.read_text())["interrupted"] is True
    deadline = time.monotonic() + 10
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists(), "the device's worker outlived Ctrl-C"
    assert not [f for f in workdir_files(work) if ".part-" in f]


def test_devices_file_errors_cite_the_line(tmp_path):
    good = '[[device]]\nname = "pi5"\nhost = "pi5.lan"\n'
    cases = {
        good + "colour = 1\n": ("line 4", "unknown key 'colour'"),
        good + "port = 70000\n": ("line 4", "port must be a whole number from 1 to 65535"),
        good + 'ssh_options = "ProxyJump=x"\n': ("line 4", "ssh_options must be a list"),
        good + 'env = { "1BAD" = "x" }\n': ("line 4", "env 1BAD"),
        good + good: ("two devices are named 'pi5'",),
        '[[device]]\nname = "local"\nhost = "x"\n': ("line 2", "reserved"),
        '[[device]]\nname = "a"\n': ("host must be a non-empty string",),
        good + 'identity_file = "missing_key"\n': ("line 4", "missing_key does not exist"),
        "[device]\nname = 1\n": ("no [[device]] tables",),
    }
    for text, fragments in cases.items():
        with pytest.raises(InputError) as caught:
            parse_devices(text, "devices.toml", tmp_path)
        for fragment in fragments:
            assert fragment in str(caught.value), (text, str(caught.value))
    device = parse_devices(good + 'python = "~/venv/bin/python"\nenv = { OMP_NUM_THREADS = 1 }\n', "d", tmp_path)[0]
    assert device.python == "~/venv/bin/python" and device.env == {"OMP_NUM_THREADS": "1"}
    assert device.workdir == "~/.cache/codir-edge"


def test_device_selection_and_the_ssh_shorthand(tmp_path):
    assert [d.name for d in select_devices(None, None)] == ["local"]
    shorthand = from_url("ssh://ci@10.0.0.7:2222")
    assert (shorthand.name, shorthand.user, shorthand.host, shorthand.port) == (
        "ci@10.0.0.7:2222",
        "ci",
        "10.0.0.7",
        2222,
    )
    assert from_url("ssh://edge-box").port is None
    for bad in ("ssh://", "http://x", "ssh://x:notaport", "ssh://x/path"):
        with pytest.raises(InputError, match="ssh://"):
            from_url(bad)
    devices = tmp_path / "devices.toml"
    devices.write_text('[[device]]\nname = "a"\nhost = "a.lan"\n[[device]]\nname = "b"\nhost = "b.lan"\n')
    assert [d.name for d in select_devices(devices, None)] == ["a", "b"]
    assert [d.name for d in select_devices(devices, ["b", "local", "b"])] == ["b", "local"]
    with pytest.raises(InputError, match=r"--device c is not in .*devices: a, b"):
        select_devices(devices, ["c"])
    with pytest.raises(InputError, match="pass --devices devices.toml"):
        select_devices(None, ["a"])


def test_budget_for_a_device_not_measured_is_refused(tmp_path, tiny_bundle):
    budgets = tmp_path / "b.toml"
    budgets.write_text('[[budget]]\nname = "x"\ntarget = "int8"\ndevice = "pi5"\nseq_len = 16\np95_ms = 5\n')
    result = invoke("profile", tiny_bundle, *FAST, "--budgets", budgets)
    assert result.exit_code == 2
    assert error_lines(result) == [
        "error: budget 'x' (line 1) names device 'pi5', which is not measured (devices: local): "
        "fix the budget or add --device pi5"
    ]


@pytest.mark.parametrize("name", ["runner", "probe"])
def test_runner_keeps_to_python_3_8(name):
    """The runner and the preflight probe run on the device's own interpreter: vermin reads their
    minimum Python version."""
    runner_file = Path(__file__).resolve().parents[1] / "codir_edge" / "core" / f"{name}.py"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "vermin"),
            "-t=3.8-",
            "--no-tips",
            "--violations",
            "--eval-annotations",
            str(runner_file),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    imports = {
        line.split()[1].split(".")[0]
        for line in runner_file.read_text().splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports <= {
        "__future__",
        "hashlib",
        "json",
        "os",
        "platform",
        "resource",
        "shutil",
        "signal",
        "subprocess",
        "sys",
        "threading",
        "time",
    }


REPO = Path(__file__).resolve().parents[1]


def test_example_workflow_passes_zizmor_offline():
    """Users copy this workflow and put an SSH key in it: pinned actions, no persisted checkout
    credentials, read-only permissions (zizmor's auditor persona, offline)."""
    zizmor = str(Path(sys.executable).parent / "zizmor")
    workflows = sorted((REPO / ".github" / "workflows").glob("*.yml"))
    assert workflows
    done = subprocess.run(
        [zizmor, "--offline", "--persona=auditor", *map(str, workflows)], capture_output=True, text=True
    )
    assert done.returncode == 0 and "No findings" in done.stdout + done.stderr, done.stdout + done.stderr


def test_example_devices_file_parses(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # where the CI job writes the key
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "edge_device").write_text("key")
    (device,) = select_devices(REPO / "examples" / "devices.toml", None)
    assert device.name == "pi5" and device.port == 22 and device.env == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert device.identity_file == str(tmp_path / ".ssh" / "edge_device")


def test_a_full_device_disk_is_refused_before_uploading(tmp_path, server, device_py, tiny_bundle):
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        devices = tmp_path / "devices.toml"
        devices.write_text(server.device_toml("tiny-disk", str(device_py), str(small / "work")))
        result = invoke("profile", tiny_bundle / "model.onnx", "--devices", devices, *FAST)
        assert result.exit_code == 2
        (line,) = error_lines(result)
        assert line.startswith("error: tiny-disk: ") and "MB is free: free space on the device" in line, line
        assert workdir_files(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_compress_shapes_a_student_to_a_budget_measured_on_the_device(tmp_path, server, device_py, backbone_dir,
                                                                      sst2_small):  # fmt: skip
    """``compress --latency-budget`` times its candidate shapes where the student will run: the graphs
    and the inputs go to the board's cache and the runner there measures them."""
    from cli_helpers import compress_args
    from conftest import tiny_teacher

    teacher = tiny_teacher(tmp_path / "teacher", backbone_dir)
    work = tmp_path / "work"
    devices = tmp_path / "devices.toml"
    devices.write_text(server.device_toml("board", str(device_py), str(work)))
    out = tmp_path / "student"
    result = invoke(*compress_args(teacher, sst2_small, out, "--latency-budget", "1000", "--devices", devices,
                                   "--budget-device", "board", "--json", tmp_path / "s.json"))  # fmt: skip
    assert result.exit_code == 0, result.output
    search = json.loads((tmp_path / "s.json").read_text())["shape_search"]
    assert search["device"] == "board" and search["timed"] == 2 and search["chosen"]["p95_ms"] > 0
    assert len(list((work / "cache").rglob("*.onnx"))) == 2  # both timed graphs were measured on the board
    assert "on board" in result.output
