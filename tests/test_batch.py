"""``python -m ditto_core batch``: the job file checked whole before any model loads (errors name the line and the
field), one registration per distinct portrait, a failing job recorded while the others finish, resume and
``--force``, ``summary.json``, CSV, a clean stop on SIGTERM, and the same jobs on a local Ray instance.

Jobs are 2 frames on the synthetic kit; warp + decode are the benchmarks' stand-in (the subject is the batch runner,
and the real renderer takes seconds per 512x512 frame on a CPU).
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT, face_image, standin_renderer, write_wav
from ditto_core.__main__ import main
from ditto_core.batch import JOB_FIELDS, RunSettings, read_jobs
from ditto_core.batch.jobs import JobFileError
from ditto_core.errors import DittoError
from ditto_core.runtime import DittoModels
from ditto_core.video import VideoWriter, probe_video

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder with one portrait, three short speech clips, a file that is not audio and a 2-frame driving video."""
    d = tmp_path_factory.mktemp("batch_inputs")
    cv2.imwrite(str(d / "portrait.png"), cv2.cvtColor(face_image(), cv2.COLOR_RGB2BGR))
    for i in range(3):
        write_wav(d / f"speech{i}.wav", 0.08, freq=180.0 + 60 * i)  # 2 frames each
    (d / "notes.wav").write_text("this is not audio\n")
    base = face_image(160, 144)
    with VideoWriter(d / "drive.mp4", fps=25) as w:
        w.write(np.stack([np.roll(base, (i, 2 * i), (0, 1)) for i in range(2)]))
    return d


@pytest.fixture
def standin(monkeypatch):
    """Warp + decode replaced by the shape-identical stand-in in this process."""
    monkeypatch.setattr(DittoModels, "new_renderer", lambda self, *a, **k: standin_renderer(self))


@pytest.fixture
def loaded(monkeypatch, synthetic_models):
    """``loaded()``: from then on the command's ``DittoModels.load`` returns the session's loaded kit (the first run of
    a test loads for real; reruns need not pay for it again)."""
    def patch():
        monkeypatch.setattr(DittoModels, "load", lambda *a, **k: synthetic_models)

    return patch


@pytest.fixture
def registrations(monkeypatch):
    """Counts source registrations (``extract_source`` calls of the offline runtime)."""
    import ditto_core.runtime.offline as offline

    calls = []
    real = offline.extract_source

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(offline, "extract_source", counting)
    return calls


def _write_jsonl(path, jobs):
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return path


def _batch(jobs_file, out, kit, *flags):
    return main(["batch", str(jobs_file), "--out", str(out), "--models", str(kit), "--no-download", "--device", "cpu",
                 "-q", *flags])


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_job_fields_are_generates_flags():
    assert set(JOB_FIELDS) == {
        "source", "audio", "drive", "out", "emotion", "steps", "seed", "overlap", "guidance", "crop_scale",
        "face_index", "mouth", "head", "pitch", "yaw", "roll", "blink", "no_drive_eye", "fade_in", "fade_out",
        "output", "drive_parts", "drive_mode", "drive_smoothing", "drive_length", "drive_max_frames"}


def test_in_process_batch_registers_the_portrait_once_and_records_a_failure(synthetic_kit, inputs, tmp_path, standin,
                                                                            registrations, loaded, capsys):
    jobs = _write_jsonl(inputs / "jobs.jsonl", [
        {"source": "portrait.png", "audio": "speech0.wav", "steps": 1},
        {"source": "portrait.png", "audio": "notes.wav", "steps": 1, "out": "bad.mp4"},  # fails: not audio
        {"source": str(inputs / "portrait.png"), "audio": "speech1.wav", "steps": 1, "seed": "3",
         "out": "clips/two.mp4"},
        {"source": "portrait.png", "audio": "speech2.wav", "steps": 1, "output": "crop", "emotion": "Happy"},
    ])
    out = tmp_path / "out"
    assert _batch(jobs, out, synthetic_kit) == 1  # some jobs failed
    err = capsys.readouterr().err
    assert "1 of 4 jobs failed" in err and "line 2 (bad.mp4): cannot read audio file" in err
    assert len(registrations) == 1  # one portrait, registered once for four jobs (one of them failing)
    assert _files(out) == ["1_portrait_speech0.mp4", "4_portrait_speech2.mp4", "clips/two.mp4", "summary.json"]
    s = _summary(out)
    assert s["schema"] == "ditto-batch/1" and s["state"] == "done" and s["runner"] == "in-process"
    assert s["counts"] == {"ok": 3, "failed": 1, "skipped": 0, "pending": 0}
    assert s["sources"] == {"registered": 1, "reused": 3}
    assert s["settings"]["device"] == "cpu" and s["settings"]["download"] is False
    by_line = {j["line"]: j for j in s["jobs"]}
    assert [j["line"] for j in s["jobs"]] == [1, 2, 3, 4]
    for line in (1, 3, 4):
        j = by_line[line]
        assert j["status"] == "ok" and j["error"] is None and j["frames"] == 2 and j["seconds"] > 0
        assert j["clip_seconds"] == pytest.approx(0.08)
        assert j["rtf"] == pytest.approx(j["seconds"] / 0.08, rel=1e-2)  # processing time / clip duration
        assert j["speed"] == pytest.approx(0.08 / j["seconds"], rel=1e-2)
        assert probe_video(out / j["output"])["frames"] == 2
    assert by_line[1]["source_reused"] is False and by_line[3]["source_reused"] is True
    bad = by_line[2]
    assert bad["status"] == "failed" and bad["output"] == "bad.mp4" and bad["frames"] is None and bad["rtf"] is None
    assert bad["error"].startswith("cannot read audio file") and "notes.wav" in bad["error"]
    assert probe_video(out / "4_portrait_speech2.mp4")["width"] == 512  # output "crop"
    assert by_line[3]["audio"] == str(inputs / "speech1.wav")

    # a rerun skips the outputs that exist and retries the failed job
    loaded()
    before = {p: (out / p).stat().st_mtime_ns for p in ("1_portrait_speech0.mp4", "clips/two.mp4")}
    assert _batch(jobs, out, synthetic_kit) == 1
    s = _summary(out)
    assert [j["status"] for j in s["jobs"]] == ["skipped", "failed", "skipped", "skipped"]
    assert {p: (out / p).stat().st_mtime_ns for p in before} == before
    # --force redoes every job (the same motion: the same seed)
    assert _batch(jobs, out, synthetic_kit, "--force") == 1
    s = _summary(out)
    assert [j["status"] for j in s["jobs"]] == ["ok", "failed", "ok", "ok"]
    assert all((out / p).stat().st_mtime_ns != t for p, t in before.items())


def test_a_csv_job_file_with_the_same_columns(synthetic_kit, inputs, tmp_path, standin, loaded, monkeypatch, capsys):
    jobs = inputs / "jobs.csv"
    jobs.write_text("source,audio,drive,steps,seed,no_drive_eye,drive_length,out\n"
                    "portrait.png,speech0.wav,,1,5,true,,\n"
                    "portrait.png,,drive.mp4,,,,hold,driven.mp4\n"
                    "portrait.png,speech1.wav,drive.mp4,1,,false,ping_pong,mixed.mov\n")
    out = tmp_path / "csv_out"
    loaded()
    assert _batch(jobs, out, synthetic_kit) == 0, capsys.readouterr().err
    s = _summary(out)
    assert [(j["line"], j["status"], j["output"]) for j in s["jobs"]] == [
        (2, "ok", "2_portrait_speech0.mp4"), (3, "ok", "driven.mp4"), (4, "ok", "mixed.mov")]
    assert s["sources"] == {"registered": 1, "reused": 2}
    assert probe_video(out / "driven.mp4")["frames"] == 2 and probe_video(out / "mixed.mov")["has_audio"]
    # every output is there: nothing to run, no model loads
    monkeypatch.setattr(DittoModels, "load", lambda *a, **k: pytest.fail("models loaded with nothing to run"))
    assert _batch(jobs, out, synthetic_kit) == 0
    assert [j["status"] for j in _summary(out)["jobs"]] == ["skipped"] * 3


def test_the_job_file_is_checked_whole_before_any_model_loads(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(DittoModels, "load", lambda *a, **k: pytest.fail("models loaded before the job file was checked"))
    ok = {"source": "portrait.png", "audio": "speech0.wav"}
    lines = [
        {**ok, "seed": "x"},                                     # 1
        {"audio": "speech0.wav"},                                # 2
        {"source": "portrait.png"},                              # 3
        {**ok, "audio": "missing.wav"},                          # 4
        {**ok, "sede": 1},                                       # 5
        {**ok, "device": "cuda"},                                # 6
        {**ok, "out": "/tmp/abs.mp4"},                           # 7
        {**ok, "out": "../up.mp4"},                              # 8
        {**ok, "out": "same.mp4"},                               # 9
        {**ok, "out": "same.mp4"},                               # 10
        {**ok, "out": "drive.mp4"},                              # 11: the driving video of line 12 (--out is its folder)
        {**ok, "drive": "drive.mp4"},                            # 12: fine
        {**ok, "drive": "drive.mp4", "drive_mode": "absolute"},  # 13
        {**ok, "output": "none"},                                # 14
        {**ok, "mouth": -1},                                     # 15
        {**ok, "no_drive_eye": "yes"},                           # 16
        {**ok, "out": "clip.avi"},                               # 17
        {**ok, "emotion": "Joy"},                                # 18
    ]
    jobs = _write_jsonl(inputs / "bad.jsonl", lines)
    with open(jobs, "a") as f:
        f.write("\n# a comment, skipped\n[1, 2]\n{not json\n")  # lines 19 (blank), 20, 21, 22
    assert main(["batch", str(jobs), "--out", str(inputs), "--models", "/no/models", "-q"]) == 2
    err = capsys.readouterr().err
    name = str(jobs)
    expected = [
        f'{name} line 1, field "seed": must be an integer in 0..18446744073709551615, got \'x\'',
        f'{name} line 2, field "source": required',
        f'{name} line 3, field "audio": required, or "drive"',
        f'{name} line 4, field "audio": no such file \'missing.wav\'',
        f'{name} line 5, field "sede": unknown field (did you mean "seed"?)',
        f'{name} line 6, field "device": a setting of the whole run, not of a job: give batch\'s --device flag',
        f'{name} line 7, field "out": must be a name inside the output folder, not an absolute path',
        f'{name} line 8, field "out": must stay inside the output folder (no \'..\')',
        f'{name} line 10, field "out": \'same.mp4\' is also the output of line 9',
        f'{name} line 11, field "out": \'drive.mp4\' would overwrite an input: the "drive" of line 12',
        f'{name} line 13, field "drive_mode": an absolute driving motion cannot be mixed with speech motion',
        f'{name} line 14, field "output": must be one of full, crop, got \'none\'',
        f'{name} line 15, field "mouth": must be a finite number in 0..10, got -1',
        f'{name} line 16, field "no_drive_eye": must be true or false, got \'yes\'',
        f'{name} line 17, field "out": must be a file name ending in .mp4',
        f'{name} line 18, field "emotion": unknown emotion label \'Joy\'',
        f"{name} line 21: a job is a JSON object of fields",
        f"{name} line 22: not valid JSON",
    ]
    assert err.startswith(f"ditto: error: {name}: {len(expected)} lines refused, nothing was run:"), err
    for e in expected:
        assert e in err, f"{e!r} not in:\n{err}"
    assert "line 9," not in err and "line 12," not in err and "Traceback" not in err
    assert not (inputs / "summary.json").exists()

    # CSV: the same checks, cells are text as on the command line; the first row is line 2
    csv = inputs / "bad.csv"
    csv.write_text("source,audio,steps,no_drive_eye,colour\nportrait.png,speech0.wav,2,maybe,\n"
                   "portrait.png,speech0.wav,two,,\nportrait.png,speech0.wav,,,red\nportrait.png,speech0.wav,1,,,extra\n")
    with pytest.raises(JobFileError) as e:
        read_jobs(csv, tmp_path)
    assert [(line, fld) for line, fld, _ in e.value.errors] == [
        (2, "no_drive_eye"), (3, "steps"), (4, "colour"), (5, None)]
    assert f'{csv} line 3, field "steps": must be an integer in 1..1000, got \'two\'' in str(e.value)
    assert f"{csv} line 5: 6 cells, the header has 5 columns" in str(e.value)


def test_jobs_take_generates_values_and_the_run_settings(inputs, tmp_path):
    jobs = _write_jsonl(tmp_path / "j.jsonl", [
        {"source": str(inputs / "portrait.png"), "audio": str(inputs / "speech0.wav"), "steps": 12, "seed": 7,
         "crop_scale": "2.0", "face_index": 1, "mouth": 0.5, "no_drive_eye": True, "fade_in": 3, "output": "crop",
         "emotion": "Happy:0.7,Sad:0.3"},
        {"source": str(inputs / "portrait.png"), "drive": str(inputs / "drive.mp4"), "drive_parts": "brows,eyes",
         "drive_smoothing": 3, "drive_length": "loop", "drive_max_frames": 10},
    ])
    one, two = read_jobs(jobs, tmp_path / "out", RunSettings(batch_size=2, renderer="tensorrt", channels_last=True))
    o = one.options
    assert (o.sampling.steps, o.sampling.seed, o.sampling.emotion.label) == (12, 7, "Happy:0.7,Sad:0.3")
    assert (o.source.crop_scale, o.source.face_index, o.clip.mouth, o.clip.drive_eye, o.clip.fade_in) == (
        2.0, 1, 0.5, False, 3)
    assert (o.render.output, o.render.batch_size, o.render.backend) == ("crop", 2, "tensorrt")
    assert o.render.channels_last and not o.render.compile and not o.render.cuda_graphs  # the run's speed options
    assert one.driving is None and one.out == "1_portrait_speech0.mp4"
    assert two.audio is None and two.out == "2_portrait_drive.mp4" and two.drive_length == "loop"
    assert set(two.driving.parts) == {"eyes", "brows"}
    assert (two.driving.smoothing, two.driving.max_frames) == (3, 10)
    with pytest.raises(ValueError, match="--batch-size must be an integer in 1..1024"):
        RunSettings(batch_size=0)
    speed = _write_jsonl(tmp_path / "speed.jsonl", [{"source": str(inputs / "portrait.png"),
                                                     "audio": str(inputs / "speech0.wav"), "compile": True}])
    with pytest.raises(JobFileError, match="line 1, field \"compile\": a setting of the whole run, not of a job: "
                                           "give batch's --compile flag"):
        read_jobs(speed, tmp_path)


def test_sigterm_stops_the_run_and_leaves_a_valid_summary(synthetic_kit, inputs, tmp_path, standin, loaded,
                                                          monkeypatch, capsys):
    """A real SIGTERM while the second job renders: that job leaves nothing, the first is kept, the summary says
    interrupted, the exit code is 143."""
    import ditto_core.runtime.offline as offline

    real = offline.generate
    calls = []

    def generate(*a, progress=None, **k):
        calls.append(1)

        def hook(stage, done, total):
            if len(calls) == 2 and stage == "render":
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(200):  # the handler raises at the next bytecode
                    __import__("time").sleep(0.01)
            progress(stage, done, total)

        return real(*a, progress=hook, **k)

    monkeypatch.setattr(offline, "generate", generate)
    loaded()
    jobs = _write_jsonl(tmp_path / "jobs.jsonl", [
        {"source": str(inputs / "portrait.png"), "audio": str(inputs / f"speech{i}.wav"), "steps": 1}
        for i in range(3)])
    out = tmp_path / "out"
    assert _batch(jobs, out, synthetic_kit) == 143
    err = capsys.readouterr().err
    assert "ditto batch: stopped by SIGTERM" in err and "Traceback" not in err
    assert _files(out) == ["1_portrait_speech0.mp4", "summary.json"]  # no partial file of job 2
    s = _summary(out)
    assert s["state"] == "interrupted" and [j["status"] for j in s["jobs"]] == ["ok", "pending", "pending"]


def test_worker_plans():
    from ditto_core.batch.ray_runner import plan_workers

    cpu_nodes = [{"CPU": 8.0}, {"CPU": 2.0}]
    assert plan_workers(cpu_nodes).describe() == "2 workers (4 CPU each, device cpu)"
    p = plan_workers(cpu_nodes, cpus_per_worker=2, workers=3, jobs=10)
    assert (p.count, p.num_cpus, p.threads) == (3, 2, 2)
    assert plan_workers([{"CPU": 2.0}]).num_cpus == 2  # the default slot, at most a node's CPUs
    assert plan_workers(cpu_nodes, cpus_per_worker=1, jobs=3).count == 3  # at most one per job
    gpu = plan_workers([{"CPU": 16.0, "GPU": 4.0}, {"CPU": 8.0, "GPU": 1.0}, {"CPU": 32.0}])
    assert (gpu.count, gpu.num_gpus, gpu.num_cpus, gpu.device) == (5, 1, 1, "cuda")
    assert plan_workers([{"CPU": 16.0, "GPU": 4.0}], device="cpu", cpus_per_worker=8).count == 2
    with pytest.raises(DittoError, match="--cpus-per-worker 4: no Ray node has 4 CPUs"):
        plan_workers([{"CPU": 2.0}], cpus_per_worker=4)
    with pytest.raises(DittoError, match="--device cuda: the Ray cluster has no GPU"):
        plan_workers(cpu_nodes, device="cuda")


def test_ray_missing_is_refused_before_anything_runs(inputs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    monkeypatch.setattr(DittoModels, "load", lambda *a, **k: pytest.fail("models loaded"))
    jobs = _write_jsonl(tmp_path / "jobs.jsonl", [{"source": str(inputs / "portrait.png"),
                                                   "audio": str(inputs / "speech0.wav")}])
    assert main(["batch", str(jobs), "--out", str(tmp_path / "o"), "--ray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ditto: error: --ray needs the ray package") and 'pip install ".[ray]"' in err
    assert main(["batch", str(jobs), "--out", str(tmp_path / "o"), "--workers", "2"]) == 2
    assert "--workers and --cpus-per-worker are settings of --ray" in capsys.readouterr().err


_BENCH_DIR = str(REPO_ROOT / "benchmarks")


def _standin_on_worker(models):
    """Run on each Ray worker after its models load (pickled by value): the stand-in renderer there too."""
    if _BENCH_DIR not in sys.path:
        sys.path.insert(0, _BENCH_DIR)
    import bench

    bench.use_standin_renderer(models)


def test_the_same_jobs_on_a_local_ray_instance(synthetic_kit, inputs, tmp_path, standin, loaded, monkeypatch, capsys):
    ray = pytest.importorskip("ray", reason="the Ray runner needs ray (pip install \".[ray]\"); not installed here",
                              exc_type=ImportError)
    import ray.cloudpickle

    from ditto_core.batch import ray_runner

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    monkeypatch.setattr(ray_runner, "run_batch_ray",
                        functools.partial(ray_runner.run_batch_ray, worker_setup=_standin_on_worker))
    jobs = _write_jsonl(tmp_path / "jobs.jsonl", [
        {"source": str(inputs / "portrait.png"), "audio": str(inputs / "speech0.wav"), "steps": 1, "seed": 2},
        {"source": str(inputs / "portrait.png"), "audio": str(inputs / "notes.wav"), "steps": 1},
        {"source": str(inputs / "portrait.png"), "audio": str(inputs / "speech1.wav"), "steps": 1, "out": "b/c.mp4"},
    ])
    local, remote = tmp_path / "local", tmp_path / "ray"
    loaded()  # in this process; each Ray worker loads the kit for real
    assert _batch(jobs, local, synthetic_kit) == 1
    assert not ray.is_initialized()
    # no address: the command starts a local Ray instance (dashboard off) and stops it afterwards
    assert _batch(jobs, remote, synthetic_kit, "--ray", "--workers", "1", "--cpus-per-worker", "1") == 1
    assert not ray.is_initialized()
    assert "line 2 (2_portrait_notes.mp4): cannot read audio file" in capsys.readouterr().err
    assert _files(remote) == _files(local) == ["1_portrait_speech0.mp4", "b/c.mp4", "summary.json"]
    for name in ("1_portrait_speech0.mp4", "b/c.mp4"):  # the same job gives the same file
        assert (remote / name).read_bytes() == (local / name).read_bytes()
    s, ref = _summary(remote), _summary(local)
    assert s["runner"] == "ray" and s["workers"] == 1 and s["worker_cpus"] == 1 and s["address"] == "local"
    assert s["counts"] == ref["counts"] == {"ok": 2, "failed": 1, "skipped": 0, "pending": 0}
    assert s["sources"] == ref["sources"] == {"registered": 1, "reused": 2}
    keys = ("line", "output", "status", "frames", "clip_seconds")
    assert [{k: j[k] for k in keys} for j in s["jobs"]] == [{k: j[k] for k in keys} for j in ref["jobs"]]
    assert s["jobs"][1]["error"] == ref["jobs"][1]["error"]
    assert all(j["seconds"] > 0 and j["worker"] for j in s["jobs"])
