"""PyTorch taggers of Won et al. (SMC 2020, "sota-music-tagging-models"): fcn, crnn and musicnn.

Our own implementation of the published architectures, loading the public state dicts strictly.
Front end (inside each model, weights from the state dict): STFT n_fft 512, hop 256, centred with
reflect padding, power 2, the stored 96-band mel filterbank (0–8 kHz), then 10·log10(max(x, 1e-10)).

Windowing: audio at 16 kHz is cut into windows of ``input_samples`` with a hop of half a window, the
last window aligned to the end. Audio shorter than one window is tiled (repeated) to fill it: a
tagger trained on 29 s excerpts of music sees repeated music, which keeps its statistics closer to
training than 19 s of digital silence would.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..weights import WeightSpec, load_state_dict, locate
from .base import Tagger
from .vocabulary import dataset_tags

_URL = "https://github.com/minzwon/sota-music-tagging-models/raw/master/models/{rel}"
_SHA256 = {
    "jamendo/crnn": "0a558989c0793f488cb677d188464c91f47c007f7c70473230e55537ca598215",
    "jamendo/fcn": "7bce08a66dbc70d096b0a330f44b4cacd9aa25519b83489fbb98f2164a194e2b",
    "jamendo/musicnn": "66280f4859376377c47f64313c7ac889a3201fdb06a01bf6e94ac6e619081bb5",
    "msd/crnn": "ebb99855ed0c83f38845db9cfb383dd6fc70938bc58701dcb66e18af9ee7fbea",
    "msd/fcn": "6012aa7eecf864a8081faedca56af054521e8dfb9c5c98659a3dd5d3e1e66f21",
    "mtat/crnn": "cd22fc70cafd06f8f2bfc7dd795abccb1f4b50d5b09094c39ad100baf87475a3",
    "mtat/fcn": "e89d751202d38c3ae69855782bc27010f87051958dbec64f5aa762364dbac271",
    "mtat/musicnn": "690ace3bb5d49d90dd38fe3ec05a1185350b3bc3742bd7ee941f56b649b2c893",
}
#: input length in samples at 16 kHz per architecture
INPUT_SAMPLES = {"fcn": 464000, "crnn": 464000, "musicnn": 48000}
#: twice the widest activation of one window (float32 bytes): fcn/crnn 64 × 96 mels × 1813 frames, musicnn 204 × 96 × 188
WINDOW_BYTES = {"fcn": 2 * 64 * 96 * 1813 * 4, "crnn": 2 * 64 * 96 * 1813 * 4, "musicnn": 2 * 204 * 96 * 188 * 4}
SOTA_MODELS = tuple(f"{arch}-{ds}" for ds_arch in _SHA256 for ds, arch in [ds_arch.split("/")])


def weight_spec(name: str) -> WeightSpec:
    """The weights file of a sota tagger, e.g. ``fcn-mtat`` -> ``mtat/fcn/best_model.pth``."""
    arch, dataset = name.split("-")
    rel = f"{dataset}/{arch}/best_model.pth"
    return WeightSpec(name, rel, _SHA256[f"{dataset}/{arch}"], (_URL.format(rel=rel),), "MIT (Won et al.)")


class _MelFrontEnd(nn.Module):
    """|STFT|² -> stored mel filterbank -> dB -> batch norm; input [B, n] at 16 kHz, output [B, 1, 96, frames]."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.zeros(512))
        self.register_buffer("fb", torch.zeros(257, 96))
        self.bn = nn.BatchNorm2d(1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, 512, 256, window=self.window, center=True, pad_mode="reflect", return_complex=True)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(power.transpose(-1, -2), self.fb).transpose(-1, -2)
        return self.bn((10.0 * torch.log10(mel.clamp_min(1e-10))).unsqueeze(1))


class _ConvBlock2d(nn.Sequential):
    """3×3 conv -> BN -> ReLU -> max-pool."""

    def __init__(self, cin: int, cout: int, pool: int | tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(pool)


class _ConvBlock1d(nn.Sequential):
    """1-D conv (odd kernel, same length) -> BN -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm1d(cout)
        self.relu = nn.ReLU()


class _VerticalFilter(nn.Module):
    """Timbral filter: conv over (freq, time) -> BN -> ReLU -> max over frequency; [B,1,F,T] -> [B,C,T]."""

    def __init__(self, cout: int, height: int, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, cout, (height, width), padding=(0, width // 2))
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x))).amax(dim=2)


class _HorizontalFilter(nn.Module):
    """Temporal filter: mean over frequency -> 1-D conv -> BN -> ReLU; [B,1,F,T] -> [B,C,T]."""

    def __init__(self, cout: int, length: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, cout, length, padding=length // 2)
        self.bn = nn.BatchNorm1d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x.mean(dim=2))))


class _FCN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        pools = [(2, 4), (2, 4), (2, 4), (3, 5), (4, 4)]
        widths = [1, 64, 128, 128, 128, 64]
        for i, pool in enumerate(pools):
            self.add_module(f"layer{i + 1}", _ConvBlock2d(widths[i], widths[i + 1], pool))
        self.dense = nn.Linear(64, 50)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec
        for i in range(1, 6):
            x = getattr(self, f"layer{i}")(x)
        return self.dense(x.flatten(2).amax(dim=2))


class _CRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        for i, (cin, cout, pool) in enumerate([(1, 64, 2), (64, 128, 3), (128, 128, 4), (128, 128, 4)]):
            self.add_module(f"layer{i + 1}", _ConvBlock2d(cin, cout, pool))
        self.layer5 = nn.GRU(128, 32, num_layers=2, batch_first=True)
        self.dense = nn.Linear(32, 50)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        sequence, _ = self.layer5(x.squeeze(2).transpose(1, 2))
        return self.dense(sequence[:, -1])


class _Musicnn(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            [_VerticalFilter(204, 67, 7), _VerticalFilter(204, 38, 7)] + [_HorizontalFilter(51, k) for k in (129, 65, 33)]
        )
        self.layer1 = _ConvBlock1d(561, 64, 7)
        self.layer2 = _ConvBlock1d(64, 64, 7)
        self.layer3 = _ConvBlock1d(64, 64, 7)
        self.dense1 = nn.Linear(1506, 200)
        self.bn = nn.BatchNorm1d(200)
        self.dense2 = nn.Linear(200, 50)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        front = torch.cat([layer(spec) for layer in self.layers], dim=1)
        res1 = self.layer1(front)
        res2 = self.layer2(res1) + res1
        res3 = self.layer3(res2) + res2
        features = torch.cat([front, res1, res2, res3], dim=1)
        pooled = torch.cat([features.amax(dim=2), features.mean(dim=2)], dim=1)
        return self.dense2(F.relu(self.bn(self.dense1(pooled))))


_ARCHITECTURES = {"fcn": _FCN, "crnn": _CRNN, "musicnn": _Musicnn}


def windows(audio: torch.Tensor, length: int) -> torch.Tensor:
    """Cut ``[B, n]`` audio into ``[B, W, length]`` windows (hop length/2, last one end-aligned; short audio tiled)."""
    n = audio.shape[-1]
    if n <= length:
        return audio.repeat(1, math.ceil(length / max(n, 1)))[:, None, :length]
    hop = length // 2
    starts = list(range(0, n - length + 1, hop))
    if starts[-1] != n - length:
        starts.append(n - length)
    return torch.stack([audio[:, s : s + length] for s in starts], dim=1)


class SotaTagger(Tagger):
    """One of the eight sota taggers (fcn / crnn / musicnn on mtat / jamendo / msd)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        arch, dataset = name.split("-")
        self.name, self.dataset = name, dataset
        self.input_samples = INPUT_SAMPLES[arch]
        self.window_bytes = WINDOW_BYTES[arch]
        self.tags = list(dataset_tags(dataset))
        self.spec = _MelFrontEnd()
        self.net = _ARCHITECTURES[arch]()

    def load_published(self, state: dict[str, torch.Tensor]) -> None:
        """Load a published state dict (its key layout) strictly."""
        mapped = {}
        for key, value in state.items():
            if key.startswith("spec.spectrogram.window"):
                mapped["spec.window"] = value
            elif key.startswith("spec.mel_scale.fb"):
                mapped["spec.fb"] = value
            elif key.startswith("spec_bn."):
                mapped["spec.bn." + key[len("spec_bn.") :]] = value
            else:
                mapped["net." + key] = value
        self.load_state_dict(mapped, strict=True)

    def windows_in(self, samples: int) -> int:
        """Windows of one row: hop half a window, plus an end-aligned one (see :func:`windows`)."""
        return 1 if samples <= self.input_samples else math.ceil((samples - self.input_samples) / (self.input_samples // 2)) + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        chunks = windows(audio, self.input_samples)
        batch, count = chunks.shape[:2]
        logits = self.net(self.spec(chunks.reshape(batch * count, -1)))
        return torch.sigmoid(logits).reshape(batch, count, -1)


def load_sota(name: str, device: str | torch.device = "cpu") -> SotaTagger:
    """Build a sota tagger and load its verified weights (see :mod:`tagbox_pipeline.weights`)."""
    path = locate(weight_spec(name))
    tagger = SotaTagger(name)
    try:
        tagger.load_published(load_state_dict(path))
    except RuntimeError as exc:
        from ..errors import WeightsError

        raise WeightsError(f"weights do not match the {name} architecture ({str(exc).splitlines()[0]})", path) from None
    return tagger.to(device).freeze()
