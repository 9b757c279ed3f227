"""`tagbox models` for the Jukebox VQ-VAE against a real local HTTP server serving the random checkpoint."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from tagbox_pipeline.cli import main
from tagbox_pipeline.paths import cache_dir
from tagbox_pipeline.files import sha256_file
from tagbox_pipeline.priors.jukebox import checkpoint

NAME = "jukebox-5b-vqvae"


@pytest.fixture()
def server(shared: Path, tmp_path: Path):
    """http://127.0.0.1:PORT/ serving good/vqvae.pth.tar (the random checkpoint) and bad/vqvae.pth.tar (HTML)."""
    www = tmp_path / "www"
    (www / "good").mkdir(parents=True)
    (www / "bad").mkdir()
    shutil.copy(shared / "reference" / "jukebox" / "vqvae_random_5b.pth.tar", www / "good" / "vqvae.pth.tar")
    (www / "bad" / "vqvae.pth.tar").write_text("<html>moved</html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www / "good" / "vqvae.pth.tar"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_falls_back_over_mirrors_then_verify_and_path(server, monkeypatch, capsys) -> None:
    base, original = server
    urls = (f"{base}/gone/vqvae.pth.tar", f"{base}/bad/vqvae.pth.tar", f"{base}/good/vqvae.pth.tar")
    monkeypatch.setattr(checkpoint, "VQVAE_SPEC", dataclasses.replace(checkpoint.VQVAE_SPEC, urls=urls))
    monkeypatch.delenv(checkpoint.WEIGHTS_ENV, raising=False)
    assert main(["models", "path", NAME]) == 2
    assert "tagbox models fetch jukebox-5b-vqvae" in capsys.readouterr().err

    assert main(["models", "fetch", NAME]) == 0
    cached = cache_dir() / "models" / "jukebox" / "5b" / "vqvae.pth.tar"
    digest = sha256_file(original)
    out = capsys.readouterr().out
    assert str(cached) in out and digest in out and urls[2] in out and f"{original.stat().st_size} bytes" in out
    assert sha256_file(cached) == digest
    assert sorted(p.name for p in cached.parent.iterdir()) == ["vqvae.pth.tar", "vqvae.pth.tar.json"]

    assert main(["models", "path", NAME]) == 0 and capsys.readouterr().out.strip() == str(cached)
    assert main(["models", "verify", NAME]) == 0
    assert f"sha256 {digest} (recorded at download), 669 tensors" in capsys.readouterr().out
    assert main(["models", "list"]) == 0 and "jukebox-5b-vqvae │ yes" in capsys.readouterr().out

    data = bytearray(cached.read_bytes())
    data[-100] ^= 0xFF  # a flipped byte after the download: the recorded sha256 catches it
    cached.write_bytes(bytes(data))
    assert main(["models", "verify", NAME]) == 2
    assert "corrupt weights for jukebox-5b-vqvae" in capsys.readouterr().err


def test_fetch_fails_naming_every_url_when_no_mirror_serves_the_model(server, monkeypatch, capsys) -> None:
    base, _ = server
    urls = (f"{base}/gone/vqvae.pth.tar", f"{base}/bad/vqvae.pth.tar")
    monkeypatch.setattr(checkpoint, "VQVAE_SPEC", dataclasses.replace(checkpoint.VQVAE_SPEC, urls=urls))
    assert main(["models", "fetch", NAME]) == 2
    err = capsys.readouterr().err
    assert all(url in err for url in urls) and "404" in err and "not a loadable weights file" in err
    assert not list((cache_dir() / "models" / "jukebox" / "5b").iterdir())


def test_weights_flag_and_environment_point_at_a_local_file(shared: Path, tmp_path: Path, monkeypatch,
                                                           capsys) -> None:
    local = shared / "reference" / "jukebox" / "vqvae_random_5b.pth.tar"
    assert main(["models", "path", NAME, "--weights", str(local)]) == 0
    assert capsys.readouterr().out.strip() == str(local)
    monkeypatch.setenv(checkpoint.WEIGHTS_ENV, str(local))
    assert main(["models", "verify", NAME]) == 0
    assert f"{local}: sha256 {sha256_file(local)} (not pinned, no record), 669 tensors" in capsys.readouterr().out
    monkeypatch.setenv(checkpoint.WEIGHTS_ENV, str(tmp_path / "nowhere.pth.tar"))
    assert main(["models", "path", NAME]) == 2
    assert f"{tmp_path / 'nowhere.pth.tar'}: Jukebox VQ-VAE weights file not found" in capsys.readouterr().err
    assert main(["models", "path", "fcn-mtat", "--weights", str(local)]) == 2
    assert "--weights applies to the Jukebox VQ-VAE only" in capsys.readouterr().err
