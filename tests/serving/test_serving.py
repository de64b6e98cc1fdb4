"""The registered generator as an MLflow Model: logged from code with a signature, nothing
pickled, loaded by alias in a fresh process with the frames of ``longvie generate``, served over
REST by MLflow's scoring server on loopback, and bad requests answered with the field at fault.

Everything runs on ``smoke`` with a random-weight stage-3 model (plumbing, not quality).
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from longvie.config import compose
from tests.helpers.project import random_stage3

pytestmark = pytest.mark.slow  # models served from fresh processes

FRAMES = 17  # two smoke clips (9 frames, one shared)
SIZE = 32


def write_video(path: Path, frames: np.ndarray) -> Path:
    from longvie.video.io import VideoWriter

    with VideoWriter(path, 8, frames.shape[2], frames.shape[1]) as writer:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame))
    return path


def read_frames(path: Path) -> np.ndarray:
    from longvie.video.io import read_video

    return read_video(path)[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A project root whose registry holds one random stage-3 version as ``champion``, and
    control files to generate from."""
    from mlflow import MlflowClient
    from PIL import Image

    from longvie.registry import log_and_register
    from longvie.tracking import ensure_experiment, tracking_uri

    root = tmp_path_factory.mktemp("serving")
    config = compose(["profile=smoke", f"paths.root={root}"])
    folder = random_stage3(root, config, "stage3", seed=0)
    ensure_experiment(config)
    client = MlflowClient(tracking_uri(config))
    experiment = client.get_experiment_by_name(config.mlflow.experiment)
    run = client.create_run(experiment.experiment_id)
    version = log_and_register(config, run.info.run_id, folder, "stage3", 3)["version"]
    client.set_terminated(run.info.run_id)
    client.set_registered_model_alias(config.mlflow.registered_model, "champion", version)
    inputs = root / "inputs"
    inputs.mkdir()
    t = np.arange(FRAMES)[:, None, None, None]
    x = np.arange(SIZE)[None, None, :, None]
    depth = np.broadcast_to((x * 6 + t * 3) % 256, (FRAMES, SIZE, SIZE, 3)).astype(np.uint8)
    points = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)
    for i in range(FRAMES):
        points[i, 10:14, (4 + i) % SIZE] = 255
    files = {
        "first_frame": inputs / "first.png",
        "depth_video": write_video(inputs / "depth.mp4", depth),
        "point_map_video": write_video(inputs / "points.mp4", points),
    }
    Image.fromarray(np.full((SIZE, SIZE, 3), 90, np.uint8)).save(files["first_frame"])
    return root, config, version, files


def encoded(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def request(files: dict[str, Path], **fields) -> dict:
    return {"first_frame": encoded(files["first_frame"]),
            "depth_video": encoded(files["depth_video"]),
            "point_map_video": encoded(files["point_map_video"]),
            "caption": "a red box", "frames": FRAMES, **fields}


def env_for(root: Path) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
            "MLFLOW_DISABLE_TELEMETRY": "true"}


@pytest.fixture(scope="module")
def loaded(served):
    import mlflow.pyfunc

    root, *_ = served
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root}/mlflow.db"
    try:
        return mlflow.pyfunc.load_model("models:/longvie@champion")
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)


def test_each_version_is_a_pyfunc_model_from_code_with_a_signature_and_no_pickle(served):
    import mlflow.artifacts
    import yaml
    from mlflow import MlflowClient

    root, _, version, _ = served
    uri = f"sqlite:///{root}/mlflow.db"
    source = MlflowClient(uri).get_model_version("longvie", str(version)).source
    local = Path(mlflow.artifacts.download_artifacts(source, tracking_uri=uri))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    flavour = mlmodel["flavors"]["python_function"]
    assert flavour["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert (local / Path(flavour["model_code_path"]).name).is_file()  # the model is code
    inputs = {column["name"] for column in json.loads(mlmodel["signature"]["inputs"])}
    assert {"first_frame", "depth_video", "depth", "point_map_video", "caption"} <= inputs
    params = {p["name"]: p["default"] for p in json.loads(mlmodel["signature"]["params"])}
    assert params == {"seed": 0, "steps": 8, "shift": 3.0, "guidance": 3.0, "solver": "unipc",
                      "history_frames": 8}
    assert (local / "input_example.json").is_file()
    assert (local / "code" / "longvie" / "serving" / "video_model.py").is_file()
    assert "torch==" in (local / "requirements.txt").read_text()
    assert (local / "artifacts" / "model" / "transformer" / "config.json").is_file()
    # Nothing to unpickle: no pickle file by name or by content, weights in safetensors.
    pickled = [p for p in local.rglob("*") if p.is_file()
               and (p.suffix in {".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt"}
                    or p.read_bytes()[:2] in {b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"})]
    assert pickled == []
    assert list(local.rglob("*.safetensors"))


def test_load_by_alias_in_a_fresh_process_gives_the_frames_of_longvie_generate(served, tmp_path):
    from longvie.generation.run import generate

    root, config, _, files = served
    # A process that knows nothing of this repository: another working folder, the URI only.
    script = f"""
import base64, json, sys
import mlflow.pyfunc
request = json.load(open({str(tmp_path / 'request.json')!r}))
model = mlflow.pyfunc.load_model("models:/longvie@champion")
out = model.predict([request], params={{"seed": 3, "steps": 3}})
open({str(tmp_path / 'served.mp4')!r}, "wb").write(base64.b64decode(out["video"][0]))
print(json.dumps({{"frames": int(out["frames"][0]), "fps": int(out["fps"][0])}}))
"""
    (tmp_path / "request.json").write_text(json.dumps(request(files)))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env_for(root),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"frames": FRAMES, "fps": 8}
    cli = compose(["profile=smoke", f"paths.root={root}", "generation.model=champion",
                   f"generation.first_frame={files['first_frame']}",
                   f"generation.depth_video={files['depth_video']}",
                   f"generation.point_map_video={files['point_map_video']}",
                   "generation.caption=a red box", f"generation.frames={FRAMES}",
                   "generation.seed=3", "generation.steps=3",
                   f"generation.output={tmp_path / 'generated.mp4'}"])
    generate(cli, progress=False)
    np.testing.assert_array_equal(read_frames(tmp_path / "served.mp4"),
                                  read_frames(tmp_path / "generated.mp4"))


def test_raw_depth_is_normalised_over_the_whole_video(served, loaded, tmp_path):
    from longvie.serving.request import ArrayDepthControls

    near_to_far = np.linspace(1.0, 9.0, FRAMES * SIZE * SIZE, dtype=np.float32)
    depth = near_to_far.reshape(FRAMES, SIZE, SIZE)
    controls = ArrayDepthControls(depth, np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8))
    first, last = controls.span(0, 1)[0], controls.span(FRAMES - 1, FRAMES)[0]
    assert first.min() == 0.0 and last.max() == 1.0  # p5 and p95 of the whole video
    assert controls.span(8, 9)[0].mean() == pytest.approx(0.5, abs=0.02)
    _, _, _, files = served
    buffer = io.BytesIO()
    np.save(buffer, depth)
    raw = {**request(files), "depth": base64.b64encode(buffer.getvalue()).decode("ascii")}
    raw.pop("depth_video")
    out = loaded.predict([raw], params={"steps": 2})
    assert int(out["frames"][0]) == FRAMES


def bad_requests(files: dict[str, Path], tmp: Path) -> list[tuple[dict, dict, str]]:
    """(request, params, what the error must say)."""
    good = request(files)
    without = {k: v for k, v in good.items() if k != "first_frame"}
    small = tmp / "small.png"
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(small)
    short = write_video(tmp / "short.mp4", np.zeros((9, SIZE, SIZE, 3), np.uint8))
    nan_depth = io.BytesIO()
    np.save(nan_depth, np.full((FRAMES, SIZE, SIZE), np.nan, np.float32))
    return [
        (without, {}, "first_frame: is required"),
        ({**good, "first_frame_path": str(files["first_frame"])}, {},
         "first_frame: give first_frame or first_frame_path, not both"),
        ({**good, "depth_video": "not base64!"}, {}, "depth_video: is not valid base64"),
        ({**good, "point_map_video": base64.b64encode(b"hello").decode()}, {},
         "point_map_video: is not a readable video"),
        ({**good, "depth_video_path": "/no/such.mp4", "depth_video": None}, {},
         "depth_video_path: '/no/such.mp4' is not a file the server can read"),
        ({**good, "first_frame": encoded(small)}, {},
         "first_frame: is 16x16 but the controls are 32x32"),
        ({**good, "point_map_video": encoded(short)}, {}, "the controls must be frame-aligned"),
        ({**good, "frames": 40}, {}, "frames: 40 asked, but the controls have only 17 frames"),
        ({**good, "frames": 5}, {}, "at least one clip"),
        ({**good, "depth": base64.b64encode(nan_depth.getvalue()).decode(), "depth_video": None},
         {}, "depth: holds NaN or infinite values"),
        ({**good, "depth": encoded(files["first_frame"])}, {},
         "depth_video: give exactly one of depth_video"),
        (good, {"solver": "heun"}, "params.solver: must be 'euler' or 'unipc'"),
        (good, {"steps": 0}, "params.steps: must be a whole number >= 1"),
    ]


def test_bad_requests_get_the_field_and_the_reason_and_no_video(served, loaded, tmp_path):
    from mlflow.exceptions import MlflowException

    _, _, _, files = served
    for bad, params, says in bad_requests(files, tmp_path):
        with pytest.raises(MlflowException) as error:
            loaded.predict([bad], params={"steps": 2, **params})
        assert says in error.value.message, (says, error.value.message)
        assert error.value.error_code == "INVALID_PARAMETER_VALUE"
        assert "Traceback" not in error.value.message


def test_a_request_longer_than_the_served_limit_is_refused(served, loaded, tmp_path):
    from mlflow.exceptions import MlflowException

    _, _, _, files = served
    long = np.zeros((41, SIZE, SIZE, 3), np.uint8)
    ask = {**request(files, frames=41),
           "depth_video": encoded(write_video(tmp_path / "d.mp4", long)),
           "point_map_video": encoded(write_video(tmp_path / "p.mp4", long))}
    with pytest.raises(MlflowException, match=r"frames: 41 is more than this model serves in "
                                              r"one request \(33, serving.max_frames\)"):
        loaded.predict([ask], params={"steps": 1})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(port: int, body: dict, timeout: float = 120) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    call = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=data,
                                  headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(call, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_longvie_serve_answers_a_real_post_on_loopback_and_stops_cleanly(served, tmp_path):
    root, _, _, files = served
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "longvie", "serve", "profile=smoke", f"paths.root={root}",
         f"serving.port={port}"], cwd=tmp_path, env=env_for(root), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, server.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as ping:
                    if ping.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not come up in 180 s"
            time.sleep(1)
        status, answer = post(port, {"dataframe_records": [request(files)],
                                     "params": {"steps": 2, "seed": 1}})
        assert status == 200, answer
        (row,) = answer["predictions"]
        (tmp_path / "answer.mp4").write_bytes(base64.b64decode(row["video"]))
        assert len(read_frames(tmp_path / "answer.mp4")) == row["frames"] == FRAMES
        status, answer = post(port, {"dataframe_records": [request(files, frames=40)]})
        assert status == 400 and "frames: 40 asked" in answer["message"]
        assert "stack_trace" not in answer
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    assert server.returncode is not None


def test_serve_names_what_the_registry_holds_for_an_unknown_alias(served):
    root, *_ = served
    done = subprocess.run(
        [sys.executable, "-m", "longvie", "serve", "profile=smoke", f"paths.root={root}",
         "serving.model=nightly"], env=env_for(root), capture_output=True, text=True,
        timeout=120, check=False)
    assert done.returncode != 0
    assert "no such alias" in done.stderr and "aliases ['champion']" in done.stderr
