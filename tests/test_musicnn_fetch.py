"""`tagbox models fetch musicnn`: the real musicnn wheel, downloaded by the real pip from a real local
package index (or, with ``$TAGBOX_MUSICNN_WHEEL_URL``, from a real local HTTP server), unpacked into
the cache and found there when the package is not installed."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import cli_env, pip_env, run_cli, serve_folder, simple_index
from tagbox_pipeline import weights
from tagbox_pipeline.errors import WeightsError
from tagbox_pipeline.taggers import musicnn_tf, musicnn_wheel

#: what the download record says of a wheel that pip downloaded
PIP_SOURCE = "pip download --no-deps --only-binary :all: musicnn==0.1.0"


@pytest.fixture()
def index(tmp_path, musicnn_wheel_file, monkeypatch):
    """A local PEP 503 index holding the real wheel, and pip (of this and of child processes) set to
    ask it alone: no pip.conf of the machine, no other index, find-links or cache."""
    root = tmp_path / "index"
    simple_index(root, musicnn_wheel_file)
    monkeypatch.delenv("TAGBOX_MODEL_DIR", raising=False)
    monkeypatch.delenv(musicnn_wheel.URL_ENV, raising=False)
    with serve_folder(root) as base:
        for key, value in pip_env(f"{base}/simple/").items():
            monkeypatch.setenv(key, value)
        yield root, base


@pytest.fixture()
def host(tmp_path, musicnn_wheel_file, monkeypatch):
    """A local host serving the real wheel; ``$TAGBOX_MUSICNN_WHEEL_URL`` lists a missing file, then it;
    pip points at a closed port, so a download with it would fail."""
    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(musicnn_wheel_file, www / musicnn_wheel.WHEEL)
    monkeypatch.delenv("TAGBOX_MODEL_DIR", raising=False)
    for key, value in pip_env("http://127.0.0.1:9/simple/").items():
        monkeypatch.setenv(key, value)
    with serve_folder(www) as base:
        monkeypatch.setenv(musicnn_wheel.URL_ENV, f"{base}/gone.whl {base}/{musicnn_wheel.WHEEL}")
        yield www, base


@pytest.fixture()
def not_installed(monkeypatch):
    """As after a plain `pip install .`: no musicnn package to be found."""
    monkeypatch.setattr(musicnn_wheel, "_installed_package", lambda: None)
    musicnn_tf.labels.cache_clear()
    yield
    musicnn_tf.labels.cache_clear()


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_fetch_with_pip_unpacks_only_the_pinned_files_and_the_taggers_load_them(index, not_installed):
    spec = musicnn_wheel.weight_spec()
    folder = weights.fetch(spec)
    models = weights.cache_dir() / "models"
    assert folder == models / "musicnn-0.1.0"
    assert _files(folder) == {member for member, _ in spec.members}  # no extractor.py, models.py, …
    assert sorted(p.name for p in models.iterdir()) == ["musicnn-0.1.0", "musicnn-0.1.0.json"]  # no temp left
    record = weights.read_sidecar(folder)
    assert record == {"url": PIP_SOURCE, "size": 29292476, "sha256": spec.sha256}
    assert musicnn_wheel.package_dir() == folder / "musicnn"
    tagger = musicnn_tf.load_original("MTT_vgg")
    assert tagger.tags[:3] == ["guitar", "classical", "slow"] and len(musicnn_tf.labels("msd")) == 50


def test_fetch_again_keeps_the_copy_and_force_replaces_it(index, not_installed):
    spec = musicnn_wheel.weight_spec()
    folder = weights.fetch(spec)
    marker = folder / "musicnn" / "stale"
    marker.write_text("old copy")
    assert weights.fetch(spec) == folder and marker.exists()
    assert weights.fetch(spec, force=True) == folder and not marker.exists()
    assert _files(folder) == {member for member, _ in spec.members}


def test_missing_checkpoints_name_the_fetch_command(not_installed, monkeypatch):
    monkeypatch.delenv("TAGBOX_MODEL_DIR", raising=False)
    with pytest.raises(WeightsError) as excinfo:
        musicnn_wheel.package_dir()
    assert str(excinfo.value) == ("the musicnn checkpoints are not installed: run `tagbox models fetch musicnn` "
                                  "(or pip install --no-deps musicnn==0.1.0)")
    assert not musicnn_wheel.is_present()


def _damage(wheel: Path) -> None:
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))


def test_a_damaged_wheel_keeps_nothing(host, not_installed):
    www, _ = host
    _damage(www / musicnn_wheel.WHEEL)
    with pytest.raises(WeightsError, match="could not download musicnn: .*gone.whl: HTTP Error 404.*corrupt"):
        weights.fetch(musicnn_wheel.weight_spec())
    assert list((weights.cache_dir() / "models").iterdir()) == []


def test_an_index_serving_another_file_is_refused_by_the_pin(index, not_installed, musicnn_wheel_file, tmp_path):
    """pip accepts the file (the index's own sha256 is that of the file it serves); the pin does not."""
    root, _ = index
    other = Path(shutil.copy(musicnn_wheel_file, tmp_path / musicnn_wheel.WHEEL))
    _damage(other)
    simple_index(root, other)
    with pytest.raises(WeightsError, match=r"could not download musicnn: corrupt weights for musicnn: sha256 \w+… "
                                           r"expected f38a4890c648…"):
        weights.fetch(musicnn_wheel.weight_spec())
    assert list((weights.cache_dir() / "models").iterdir()) == []


def test_pip_failing_names_the_command_its_message_and_the_url_variable(index, not_installed):
    """An index without the project (pip.conf's indexes and find-links, which may hold it, are not read)."""
    root, _ = index
    simple_index(root)  # the project's page, without files
    with pytest.raises(WeightsError) as excinfo:
        weights.fetch(musicnn_wheel.weight_spec())
    message = str(excinfo.value)
    assert f"could not download musicnn: `{sys.executable} -m {PIP_SOURCE}` failed (exit 1): " in message
    assert "ERROR: No matching distribution found for musicnn==0.1.0; " in message
    assert "set TAGBOX_MUSICNN_WHEEL_URL to its URLs" in message
    assert list((weights.cache_dir() / "models").iterdir()) == []


def test_no_pip_names_the_command_and_the_url_variable(index, not_installed, tmp_path, monkeypatch):
    """A Python without pip (a venv made ``--without-pip``) runs tagbox."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "bare"], check=True, timeout=120)
    bare = str(tmp_path / "bare" / "bin" / "python")
    monkeypatch.setattr(sys, "executable", bare)
    with pytest.raises(WeightsError) as excinfo:
        weights.fetch(musicnn_wheel.weight_spec())
    message = str(excinfo.value)
    assert f"`{bare} -m {PIP_SOURCE}` failed (exit 1): {bare}: No module named pip; " in message
    assert musicnn_wheel.URL_ENV in message


def test_a_changed_file_fails_verification(index, not_installed):
    spec = musicnn_wheel.weight_spec()
    folder = weights.fetch(spec)
    index = folder / "musicnn" / "MSD_vgg" / ".index"
    index.write_bytes(index.read_bytes()[:-1] + b"\0")
    with pytest.raises(WeightsError, match="corrupt weights for musicnn"):
        weights.verify(spec, folder)


def test_model_dir_copy_is_found_before_the_cache(index, not_installed, tmp_path, monkeypatch):
    folder = weights.fetch(musicnn_wheel.weight_spec())
    monkeypatch.setenv("TAGBOX_MODEL_DIR", str(tmp_path / "models"))
    copy = shutil.copytree(folder, tmp_path / "models" / "musicnn-0.1.0")
    assert musicnn_wheel.package_dir() == copy / "musicnn"


def test_pip_by_default_the_url_variable_replaces_it(monkeypatch):
    monkeypatch.delenv(musicnn_wheel.URL_ENV, raising=False)
    spec = musicnn_wheel.weight_spec()
    assert spec.urls == () and spec.fetcher is musicnn_wheel.pip_download  # no host of its own
    monkeypatch.setenv(musicnn_wheel.URL_ENV, "http://127.0.0.1:9/a.whl  file:///srv/b.whl")
    spec = musicnn_wheel.weight_spec()
    assert spec.urls == ("http://127.0.0.1:9/a.whl", "file:///srv/b.whl") and spec.fetcher is None


def test_url_variable_downloads_without_pip(host, not_installed):
    """``host`` points pip at a closed port: the wheel comes from the second URL, the first being gone."""
    _, base = host
    folder = weights.fetch(musicnn_wheel.weight_spec())
    assert weights.read_sidecar(folder)["url"] == f"{base}/{musicnn_wheel.WHEEL}"
    assert musicnn_wheel.package_dir() == folder / "musicnn"


def test_models_cli_fetch_list_verify_path(index, tmp_path):
    """The CLI in this venv (where `make` installed the package): fetch (with pip, from the local index)
    still fills the cache; path and verify report the installed package, checked against the same pins."""
    env = cli_env(TAGBOX_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("TAGBOX_MODEL_DIR", None)
    fetched = run_cli(["models", "fetch", "musicnn"], env=env, timeout=120)
    assert fetched.returncode == 0, fetched.stderr
    assert str(tmp_path / "cache" / "models" / "musicnn-0.1.0") in fetched.stdout
    assert musicnn_wheel.weight_spec().sha256 in fetched.stdout and f"from {PIP_SOURCE})" in fetched.stdout
    assert "Saved " in fetched.stderr  # pip's own report, passed on to stderr
    installed = musicnn_wheel._installed_package()
    path = run_cli(["models", "path", "musicnn"], env=env, timeout=120)
    assert path.returncode == 0 and path.stdout.strip() == str(installed or tmp_path / "cache" / "models"
                                                                / "musicnn-0.1.0" / "musicnn")
    verified = run_cli(["models", "verify", "musicnn"], env=env, timeout=120)
    assert verified.returncode == 0 and "10 files here match their pins OK" in verified.stdout, verified.stderr
    listing = run_cli(["models", "list"], env=env, timeout=120)
    assert listing.returncode == 0 and "musicnn " in listing.stdout and "ISC" in listing.stdout
