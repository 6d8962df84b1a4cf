"""The GPU session's one command (benchmarks/device.sh) end to end on the CPU: export its inputs for one small set,
then `run --dry-run`, which blocks the modules the device lacks (the teacher's wheel and ONNX Runtime included) and
distils from the carried compact teacher. A typo or a missing file fails here, not in the few minutes a GPU is
lent."""
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DATASETS / "amazon-google").is_dir(), reason="needs ../shared/datasets")]


def test_device_script_exports_and_dry_runs(tmp_path):
    env = {**os.environ, "GPU_DIR": str(tmp_path / "gpu"), "WHEEL_DIR": str(tmp_path / "whl"),
           "INDEX_DIR": str(tmp_path / "indexes"), "TRAIN_SETS": "amazon-google", "BENCH_SETS": "amazon-google",
           "MAX_LISTS": "40", "OUT": str(tmp_path / "out")}
    script = ROOT / "benchmarks" / "device.sh"
    export = subprocess.run(["bash", str(script), "export"], env=env, capture_output=True, text=True, timeout=900)
    assert export.returncode == 0, export.stdout[-3000:] + export.stderr[-3000:]
    assert "travels:" in export.stdout
    run = subprocess.run(["bash", str(script), "run", "--dry-run"], env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-5000:]
    out = tmp_path / "out"
    log = (out / "device.log").read_text()
    assert "training lists" in log and log.count("best epoch") == 2
    # Both students come back as parts of one tar that reassemble into loadable fp16 models, with the reports.
    parts = sorted(out.glob("students.tar.part-*"))
    assert parts and len(parts) + 1 <= 8  # and the log: what the device hands back
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        tar.extractall(tmp_path / "back", filter="data")
    from rerank_pipeline.rerankers import Reranker

    back = tmp_path / "back"
    crossjem, mice = Reranker.load(back / "crossjem-kd6"), Reranker.load(back / "mice-kd")
    assert crossjem.kind == "crossjem" and crossjem.network.encoder.config.num_hidden_layers == 6
    assert mice.kind == "mice" and mice.config["head"] == "pooled" and mice.config["teacher"].endswith("teacher")
    names = {p.relative_to(back / "report").as_posix() for p in (back / "report").rglob("*") if p.is_file()}
    assert {"crossjem-kd6/training.json", "mice-kd/training.json", "env.txt", "bench_amazon-google.md"} <= names
    bench = (back / "report" / "bench_amazon-google.md").read_text()
    assert "| 20 | cpu | torch | 2 |" in bench
