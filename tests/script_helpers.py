"""Running the set-up scripts under test (scripts/ensure_*.sh, which share scripts/lib/ensure_apt.sh)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_with_failing_apt(tmp_path: Path, script: str, **env: str) -> subprocess.CompletedProcess:
    """``bash scripts/<script>`` with a fake ``apt-get`` first on PATH that fails (exit 100) and
    records its arguments in ``tmp_path/apt-calls``; CI and INSTALL_SYSTEM_DEPS unset unless ``env``
    sets them."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    apt = fake_bin / "apt-get"
    apt.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'apt-calls'}\nexit 100\n")
    apt.chmod(0o755)
    full = {k: v for k, v in os.environ.items() if k not in ("CI", "INSTALL_SYSTEM_DEPS")}
    full.update(PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    full.update(env)
    return subprocess.run(["bash", str(REPO / "scripts" / script)], env=full, capture_output=True,
                          text=True, timeout=60)
