"""Disk full: the output runs out of space in the middle of a track, while `tagbox watch` keeps running.

Two ways to run out, both real OS errors:

* ``tmpfs``: OUT is a small tmpfs (needs root and ``mount``; skipped otherwise). After the big
  file fails, the "operator" grows the tmpfs (``mount -o remount,size=...``) and drops a small file.
* ``fsize``: the watcher runs under ``RLIMIT_FSIZE`` (``ulimit -f``; SIGXFSZ ignored, so a write past
  the limit fails with EFBIG). Chunk results fit under the limit, a long track's stem file does not;
  a short file's stems do.

Either way the big file must end in ``failed/`` (byte-identical, its reason naming the OS error) or
stay in the inbox, no partial stem folder or staging file may remain, and the watcher must still be
alive and process the small file dropped afterwards.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from faultkit import SOURCES, partial_outputs, sha256_file, copy_in
from support import FAST_TOML, excerpt, start_cli, write_toml

pytestmark = [pytest.mark.faults]

#: 2 s windows and the warm start only: small chunk results, one long stem file per source
DISK_TOML = (FAST_TOML.replace("window_seconds = 3.0", "window_seconds = 2.0")
             .replace("stable_seconds = 1.0", "stable_seconds = 0.5"))
#: the big track: 10 s of 8 kHz mono 32-bit float (stems are float too: 32 kB/s per file)
BIG_SECONDS, SMALL_SECONDS, RATE = 10.0, 2.0, 8000
#: per-file size limit of the fsize variant (bytes): above one chunk result, below a 10 s stem
FSIZE_LIMIT = 256 * 1024
#: size of the tmpfs variant: the big track's chunk results fit, its stems do not
TMPFS_SIZE = "1600k"


def _can_mount(target: Path) -> str | None:
    if os.geteuid() != 0:
        return "not root"
    probe = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tagbox-faults", str(target)],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else probe.stderr.strip() or "mount failed"


def _limit_file_size() -> None:  # runs in the child between fork and exec
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


@pytest.mark.parametrize("how", ["tmpfs", "fsize"])
def test_disk_full_mid_track(how: str, shared: Path, prefect_server, tmp_path: Path, matrix) -> None:
    title = {"tmpfs": f"disk full: OUT on a {TMPFS_SIZE} tmpfs", "fsize": f"disk full: RLIMIT_FSIZE {FSIZE_LIMIT // 1024} kB"}
    matrix.describe(title[how], "big file quarantined with the OS error (or left in the inbox); no partial stem; "
                                "watcher keeps running and processes a later file")
    inbox, out, originals = tmp_path / "inbox", tmp_path / "out", tmp_path / "originals"
    inbox.mkdir()
    out.mkdir()
    big = excerpt(shared, "d06", originals / "a_big.wav", start_s=0.0, seconds=BIG_SECONDS, subtype="FLOAT",
                  rate=RATE, channels=1)
    small = excerpt(shared, "d07", originals / "b_small.wav", seconds=SMALL_SECONDS, subtype="FLOAT", rate=RATE,
                    channels=1)
    sha_big, sha_small = sha256_file(big), sha256_file(small)
    config = write_toml(tmp_path / "disk.toml", DISK_TOML)
    mounted = False
    if how == "tmpfs":
        why = _can_mount(out)
        if why:
            pytest.skip(f"cannot mount a tmpfs here ({why}); the fsize variant covers disk-full")
        mounted = True
    preexec = _limit_file_size if how == "fsize" else None
    watcher = start_cli(["watch", str(inbox), "--out", str(out), "--sources", SOURCES, "--config", str(config)],
                        tmp_path / "home", prefect_server.url, preexec_fn=preexec)
    try:
        watcher.wait_for(r"watching .*inbox")
        copy_in(big, inbox)
        watcher.wait_for(r"quarantined a_big\.wav|a_big\.wav: stems in", timeout=300)
        big_failed = (inbox / "failed" / big.name).exists()
        reason = (inbox / "failed" / f"{big.name}.error.txt").read_text() if big_failed else ""
        problems_after_failure = partial_outputs(out)
        folder_after_failure = (out / "a_big").exists()
        if mounted:  # the operator makes room
            subprocess.run(["mount", "-o", "remount,size=64m", str(out)], check=True)
        copy_in(small, inbox)
        watcher.wait_for(r"b_small\.wav: stems in|quarantined b_small\.wav", timeout=300)
        time.sleep(0.5)
        alive = watcher.process.poll() is None
        code = watcher.interrupt()
        problems = partial_outputs(out)
        small_done = (inbox / "processed" / small.name).exists() and (out / "b_small" / "manifest.json").exists()
        big_where = next((p for p in (inbox / "failed" / big.name, inbox / big.name, inbox / "processed" / big.name)
                          if p.exists()), None)
        cause = next((line for line in reason.splitlines() if line.startswith("cause:")), "(no reason file)")
        matrix.observe(f"big: {'quarantined' if big_failed else 'NOT quarantined'} ({cause.strip()[:200]}); "
                       f"partial after failure: {len(problems_after_failure)}; watcher alive: {alive}; "
                       f"small processed: {small_done}; exit on Ctrl-C {code}",
                       inputs_modified=int(big_where is not None and sha256_file(big_where) != sha_big)
                       + int((inbox / "processed" / small.name).exists()
                             and sha256_file(inbox / "processed" / small.name) != sha_small),
                       partial_outputs=len(problems_after_failure) + len(problems) + int(folder_after_failure),
                       lost_files=int(big_where is None))
    finally:
        if watcher.process.poll() is None:
            watcher.process.kill()
        if mounted:
            subprocess.run(["umount", str(out)], check=False)
    assert big_failed and re.search(r"No space left on device|File too large|disk is full", reason), \
        watcher.log()[-3000:]
    assert f"file: {big.name}" in reason
    assert not folder_after_failure and not problems_after_failure, problems_after_failure
    assert big_where == inbox / "failed" / big.name and sha256_file(big_where) == sha_big
    assert alive and small_done, watcher.log()[-3000:]
    assert not problems, problems
    assert code in (0, 130)
