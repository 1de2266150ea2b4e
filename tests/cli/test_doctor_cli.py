import json
import subprocess
import sys
from pathlib import Path


def test_doctor_json_reports_components():
    exe = Path(sys.executable).parent / "aucues"
    r = subprocess.run([str(exe), "doctor", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    names = {c["name"]: c for c in report["checks"]}
    for required in ("torch", "onnxruntime", "tritonserver", "mediapipe", "numpy"):
        assert names[required]["ok"], names[required]
    assert "CPUExecutionProvider" in names["onnxruntime"]["detail"]
    # GPU parts are optional: reported, never required
    assert names["cuda"]["required"] is False and names["tensorrt"]["required"] is False


def test_doctor_table(cli):
    code, out = cli("doctor")
    assert code == 0
    assert "mediapipe" in out and "tritonserver" in out


def test_unknown_command_is_one_line_error():
    exe = Path(sys.executable).parent / "aucues"
    r = subprocess.run([str(exe), "no-such-command"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
