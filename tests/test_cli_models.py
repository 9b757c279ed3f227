"""`tagbox models` against a real local HTTP server standing in for the weights host."""

import shutil
import subprocess
import sys

import pytest

from support import cli_env, run_cli, serve_folder
from tagbox_pipeline.taggers import sota


def tagbox(*args, env):
    return run_cli(list(args), env=env, timeout=120)


@pytest.fixture()
def env(tmp_path):
    environment = cli_env(TAGBOX_CACHE_DIR=str(tmp_path / "cache"))
    environment.pop("TAGBOX_MODEL_DIR", None)
    return environment


def test_list_verify_path_and_fetch(shared, tmp_path, env, monkeypatch):
    source = shared / "models" / "sota-music-tagging" / "mtat" / "fcn" / "best_model.pth"
    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(source, www / "best_model.pth")
    with serve_folder(www) as base:
        missing = tagbox("models", "path", "fcn-mtat", env=env)
        assert missing.returncode == 2 and "tagbox models fetch fcn-mtat" in missing.stderr
        # point the spec's URL at the local server (the real one is the public GitHub raw URL)
        url = f"{base}/best_model.pth"
        code = ("import sys; from tagbox_pipeline.taggers import sota; from tagbox_pipeline.cli import main;"
                "real = sota.weight_spec;"
                f"sota.weight_spec = lambda n: real(n).__class__(**{{**real(n).__dict__, 'urls': ('{url}',)}});"
                "sys.exit(main(['models', 'fetch', 'fcn-mtat']))")
        fetched = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
        assert fetched.returncode == 0, fetched.stderr
        path = tagbox("models", "path", "fcn-mtat", env=env)
        assert path.returncode == 0 and path.stdout.strip() == str(tmp_path / "cache" / "models" / "mtat" / "fcn" / "best_model.pth")
        verified = tagbox("models", "verify", "fcn-mtat", env=env)
        assert verified.returncode == 0 and sota.weight_spec("fcn-mtat").sha256 in verified.stdout
        listing = tagbox("models", "list", env=env)
        assert listing.returncode == 0 and "fcn-mtat" in listing.stdout


def test_unknown_weights_name_exits_2(env):
    result = tagbox("models", "fetch", "nope", env=env)
    assert result.returncode == 2 and "unknown weights 'nope'" in result.stderr
