"""The original musicnn taggers (Pons & Serra, 2019) from the TensorFlow checkpoints in the pip wheel.

``musicnn==0.1.0`` ships four TF1 checkpoints: MTT_musicnn, MTT_vgg, MSD_musicnn, MSD_vgg (found by
:func:`.musicnn_wheel.package_dir`: the installed package or the unpacked wheel). They are read with
our own tensor-bundle reader (:mod:`.tf_bundle`) and run by a PyTorch re-implementation of both
architectures; TensorFlow is never imported. The pre-processing reproduces the original's,
quirks included: periodic-Hann STFT (512/256) with *zero* centre padding, Slaney mel (96 bands),
the mel power rounded to float16 before ``log10(10000 x + 1)`` (with a straight-through gradient
here), 187-frame windows with hop 187 and the trailing partial window dropped. Batch norm uses
epsilon 1e-3 and sits after the ReLU; TF 'SAME' padding of even kernels puts the extra zero after.
Inputs shorter than one window (187 frames ≈ 2.98 s) are zero-padded to one window (the original
crashes). The STFT runs in float64 (as the original's numpy FFT), the rest in float32.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import WeightsError
from .base import Tagger, in_groups, quiet_rows, span_energies
from .musicnn_wheel import package_dir
from .tf_bundle import read_bundle

ORIGINAL_MODELS = ("MTT_musicnn", "MTT_vgg", "MSD_musicnn", "MSD_vgg")
N_FFT, HOP, N_MELS, WINDOW_FRAMES = 512, 256, 96, 187
BN_EPS = 1e-3
#: the loud windows of :meth:`OriginalMusicnn.tag_loud` go through the network in batches of a multiple of this
LOUD_BATCH_STEP = 8


def checkpoint_prefix(name: str) -> str:
    """The checkpoint prefix of a model: its folder with an empty basename (files ``.index``, ``.data-…``)."""
    return f"{package_dir() / name}/"


@lru_cache(maxsize=None)
def labels(dataset: str) -> list[str]:
    """MTT_LABELS / MSD_LABELS, parsed from the wheel's ``configuration.py`` without executing it."""
    tree = ast.parse((package_dir() / "configuration.py").read_text(encoding="utf-8"))
    wanted = "MTT_LABELS" if dataset == "mtat" else "MSD_LABELS"
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == wanted for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise WeightsError(f"{wanted} not found", package_dir() / "configuration.py")


class _BatchNorm(nn.Module):
    """Inference batch norm over the channel axis (dim 1) with TF's epsilon 1e-3."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            self.register_buffer(name, torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = self.gamma / torch.sqrt(self.moving_variance + BN_EPS)
        return (x - self.moving_mean.view(shape)) * scale.view(shape) + self.beta.view(shape)

    def falling(self) -> torch.Tensor:
        """Which channels have a negative scale ``gamma / sqrt(var + eps)`` (gamma's sign), ``[channels]`` bool."""
        return self.gamma < 0


class _Conv(nn.Module):
    """TF conv → ReLU → BN; input [N, C, time, freq]; ``pad`` = (time before, time after)."""

    def __init__(self, kernel: tuple[int, int], cin: int, cout: int, pad: tuple[int, int], same_freq: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel)
        self.bn = _BatchNorm(cout)
        freq_pad = ((kernel[1] - 1) // 2, kernel[1] - 1 - (kernel[1] - 1) // 2) if same_freq else (0, 0)
        self.padding = (*freq_pad, *pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(F.pad(x, self.padding))))

    def pooled(self, x: torch.Tensor, pool: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``pool(forward(x))`` for a max-pooling ``pool``, with ReLU and batch norm applied after pooling.

        ReLU is non-decreasing and the batch norm an affine map per channel, increasing where its
        scale is positive and decreasing where it is negative; rounding keeps that order. So the
        maximum of the activations is the activation of the maximum (of the minimum for a negative
        scale), bit for bit, and only the pooled values need the element-wise work. The minimum of a
        channel is minus the maximum of its negation, and the negated channel is the convolution
        with negated weights and bias (exact: rounding is symmetric in sign), so one convolution with
        those channels' signs flipped and one pooling pass give both.
        """
        sign = 1 - 2 * self.bn.falling().to(x.dtype)  # [channels]: -1 where the scale is negative
        y = F.conv2d(F.pad(x, self.padding), self.conv.weight * sign.view(-1, 1, 1, 1), self.conv.bias * sign)
        top = pool(y)
        top = top * sign.view(1, -1, *(1,) * (top.dim() - 2))
        return self.bn(F.relu(top))


def _pool_axis(x: torch.Tensor, axis: int, size: int, step: int) -> torch.Tensor:
    """Maxima of ``size`` consecutive values every ``step`` along ``axis`` (no padding, floor), exact.

    A window that is a whole number of steps is the maximum of non-overlapping step-wide maxima
    (fewer element-wise passes); otherwise the maximum of ``size`` strided views.
    """
    if 1 < step < size and size % step == 0:
        return _pool_axis(_pool_axis(x, axis, step, step), axis, size // step, 1)
    count = (x.shape[axis] - size) // step + 1
    index = (slice(None),) * axis + (slice(None, None, step),)
    pooled = x.narrow(axis, 0, step * (count - 1) + 1)[index]
    for offset in range(1, size):
        pooled = torch.maximum(pooled, x.narrow(axis, offset, step * (count - 1) + 1)[index])
    return pooled


def _max_pool(x: torch.Tensor, window: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """``F.max_pool2d(x, window, stride)`` (no padding, floor) on ``[N, C, time, freq]``, bit for bit.

    The maximum over a window is separable (frequency first, then time) and exact; element-wise
    maxima of strided views are several times faster on CPU than torch's pooling kernel here.
    """
    return _pool_axis(_pool_axis(x, 3, window[1], stride[1]), 2, window[0], stride[0])


def _same(k: int) -> tuple[int, int]:
    """TF 'SAME' padding of a kernel of length k: (k−1)//2 before, the rest after."""
    return (k - 1) // 2, k - 1 - (k - 1) // 2


class _MusicnnNet(nn.Module):
    """musicnn: timbral + temporal front end, 3 residual 1-D convs, max/mean pooled dense back end."""

    #: the widest timbral conv output of one window (204 × 187 × 59 float32), twice
    WINDOW_BYTES = 2 * 204 * WINDOW_FRAMES * 59 * 4

    def __init__(self) -> None:
        super().__init__()
        self.bn_in = _BatchNorm(1)
        self.timbral = nn.ModuleList([_Conv((7, 38), 1, 204, (3, 3)), _Conv((7, 67), 1, 204, (3, 3))])
        self.temporal = nn.ModuleList([_Conv((k, 1), 1, 51, _same(k)) for k in (128, 64, 32)])
        self.mid = nn.ModuleList([_Conv((7, 561), 1, 64, (3, 3)), _Conv((7, 64), 1, 64, (3, 3)), _Conv((7, 64), 1, 64, (3, 3))])
        self.bn_pool = _BatchNorm(1506)
        self.dense = nn.Linear(1506, 200)
        self.bn_dense = _BatchNorm(200)
        self.out = nn.Linear(200, 50)

    def load_tf(self, t: dict[str, np.ndarray]) -> None:
        convs = [*self.timbral, *self.temporal, *self.mid]
        for i, conv in enumerate(convs):
            name = "conv2d" if i == 0 else f"conv2d_{i}"
            _load_conv(conv, t, name, f"batch_normalization_{i + 1}")
        _load_bn(self.bn_in, t, "batch_normalization")
        _load_bn(self.bn_pool, t, "batch_normalization_9")
        _load_bn(self.bn_dense, t, "batch_normalization_10")
        _load_dense(self.dense, t, "dense")
        _load_dense(self.out, t, "dense_1")

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.bn_in(logmel[:, None])  # [N, 1, 187, 96]
        front = [conv.pooled(x, lambda y: y.amax(dim=3)) for conv in (*self.timbral, *self.temporal)]
        front = torch.cat(front, dim=1)  # [N, 561, 187]
        layers, h = [front], front
        for i, conv in enumerate(self.mid):
            y = conv(h.transpose(1, 2)[:, None]).squeeze(3)  # image [N, 1, 187, C] -> [N, 64, 187]
            h = y if i == 0 else y + h
            layers.append(h)
        features = torch.cat(layers, dim=1)  # [N, 753, 187]
        pooled = torch.stack([features.amax(dim=2), features.mean(dim=2)], dim=2).flatten(1)  # interleaved
        hidden = self.bn_dense(F.relu(self.dense(self.bn_pool(pooled))))
        return self.out(hidden)


class _VggNet(nn.Module):
    """vgg: five 3×3 conv blocks with max-pooling, NHWC flatten, one dense layer."""

    POOLS = [((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))]
    #: the first block's conv output of one window (128 × 187 × 96 float32), twice
    WINDOW_BYTES = 2 * 128 * WINDOW_FRAMES * N_MELS * 4

    def __init__(self) -> None:
        super().__init__()
        self.bn_in = _BatchNorm(1)
        self.blocks = nn.ModuleList([_Conv((3, 3), 1 if i == 0 else 128, 128, (1, 1), same_freq=True) for i in range(5)])
        self.out = nn.Linear(256, 50)

    def load_tf(self, t: dict[str, np.ndarray]) -> None:
        _load_bn(self.bn_in, t, "batch_normalization")
        for i, block in enumerate(self.blocks):
            _load_conv(block, t, f"{i + 1}CNN", f"batch_normalization_{i + 1}")
        _load_dense(self.out, t, "dense")

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.bn_in(logmel[:, None])
        for block, (window, stride) in zip(self.blocks, self.POOLS):
            x = block.pooled(x, lambda y, window=window, stride=stride: _max_pool(y, window, stride))
        return self.out(x.permute(0, 2, 3, 1).flatten(1))


def _tensor(t: dict[str, np.ndarray], name: str) -> torch.Tensor:
    if name not in t:
        raise KeyError(name)
    return torch.from_numpy(np.ascontiguousarray(t[name]))


def _load_bn(bn: _BatchNorm, t: dict[str, np.ndarray], name: str) -> None:
    for field in ("gamma", "beta", "moving_mean", "moving_variance"):
        getattr(bn, field).copy_(_tensor(t, f"{name}/{field}"))


def _load_conv(conv: _Conv, t: dict[str, np.ndarray], name: str, bn: str) -> None:
    conv.conv.weight.data.copy_(_tensor(t, f"{name}/kernel").permute(3, 2, 0, 1))  # HWIO -> OIHW
    conv.conv.bias.data.copy_(_tensor(t, f"{name}/bias"))
    _load_bn(conv.bn, t, bn)


def _load_dense(dense: nn.Linear, t: dict[str, np.ndarray], name: str) -> None:
    dense.weight.data.copy_(_tensor(t, f"{name}/kernel").T)
    dense.bias.data.copy_(_tensor(t, f"{name}/bias"))


class _RoundToHalf(torch.autograd.Function):
    """Round to float16 and back (the original's storage step) with an identity gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return x.half().float()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return grad


class OriginalMusicnn(Tagger):
    """One of the four original musicnn taggers, with the original pre-processing."""

    input_samples = (WINDOW_FRAMES - 1) * HOP + N_FFT // 2  # 48000 samples = 3 s at 16 kHz

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in ORIGINAL_MODELS:
            raise ValueError(name)
        self.name = name
        self.dataset = "mtat" if name.startswith("MTT") else "msd"
        self.tags = labels(self.dataset)
        self.net = _MusicnnNet() if name.endswith("musicnn") else _VggNet()
        self.window_bytes = self.net.WINDOW_BYTES
        mel = librosa.filters.mel(sr=self.sample_rate, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)
        self.register_buffer("mel_basis", torch.from_numpy(mel))
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True, dtype=torch.float64))

    def logmel(self, audio: torch.Tensor) -> torch.Tensor:
        """``[B, n]`` 16 kHz audio -> ``[B, frames, 96]`` log-mel (float32), as extractor.py computes it."""
        spec = torch.stft(audio.double(), N_FFT, HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)
        power = (spec.real.square() + spec.imag.square()).float()
        mel = torch.matmul(self.mel_basis, power).transpose(1, 2)
        return torch.log10(10000 * _RoundToHalf.apply(mel) + 1)

    def windows(self, logmel: torch.Tensor) -> torch.Tensor:
        """``[B, frames, 96]`` -> ``[B, W, 187, 96]``: hop 187, tail dropped; fewer frames: zero-padded to one."""
        frames = logmel.shape[1]
        if frames < WINDOW_FRAMES:
            logmel = F.pad(logmel, (0, 0, 0, WINDOW_FRAMES - frames))
        count = _window_count(frames)
        return logmel[:, : count * WINDOW_FRAMES].reshape(logmel.shape[0], count, WINDOW_FRAMES, N_MELS)

    def loud_windows(self, audio: torch.Tensor, skip: float) -> torch.Tensor:
        """Windows not among the quietest rows holding < ``skip`` of the window's energy (see
        :meth:`Tagger.tag`); a window's energy is that of the samples its 187 frames centre on."""
        count = _window_count(audio.shape[-1] // HOP + 1)
        return ~quiet_rows(span_energies(audio, WINDOW_FRAMES * HOP, count), skip)

    def logits(self, logmel_windows: torch.Tensor) -> torch.Tensor:
        """Network only: ``[N, 187, 96]`` log-mel windows -> ``[N, 50]`` logits."""
        return self.net(logmel_windows)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        chunks = self.windows(self.logmel(audio))
        batch, count = chunks.shape[:2]
        return torch.sigmoid(self.logits(chunks.flatten(0, 1))).reshape(batch, count, -1)

    def tag_loud(self, audio: torch.Tensor, loud: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The network on the windows where ``loud`` ``[B, W]`` is true (rows plus ``context``); NaN elsewhere.

        The log-mels are computed in groups of rows; the loud windows of all rows then go through
        the network in batches of a multiple of :data:`LOUD_BATCH_STEP` windows (the last one
        zero-padded to it), so the allocator mostly reuses the same blocks instead of growing the
        heap for every new batch size. Both reserve from :data:`.budget.BUDGET`.
        """
        logmels = in_groups(lambda rows: self.windows(self.logmel(rows if context is None else rows + context)), audio,
                            self.row_bytes(audio.shape[-1]))
        chunks = torch.cat(logmels)[loud]
        tagged = chunks.new_full((*loud.shape, len(self.tags)), float("nan"))
        if len(chunks):
            tagged[loud] = torch.cat(in_groups(self._padded_tags, chunks, self.window_bytes, LOUD_BATCH_STEP))
        return tagged

    def _padded_tags(self, windows: torch.Tensor) -> torch.Tensor:
        """Sigmoid tags of ``[N, 187, 96]`` log-mel windows, run zero-padded to a multiple of :data:`LOUD_BATCH_STEP`."""
        padded = F.pad(windows, (0, 0, 0, 0, 0, -len(windows) % LOUD_BATCH_STEP))
        return torch.sigmoid(self.logits(padded)[:len(windows)])


def _window_count(frames: int) -> int:
    """Windows of 187 frames (hop 187, tail dropped) in ``frames`` STFT frames; at least one."""
    return max(1, frames // WINDOW_FRAMES)


def load_original(name: str, device: str | torch.device = "cpu") -> OriginalMusicnn:
    """Build an original musicnn tagger and load its checkpoint from the musicnn wheel.

    Raises:
        WeightsError: when the wheel is missing, or its checkpoint is corrupt or lacks a tensor.
    """
    prefix = checkpoint_prefix(name)
    tensors = read_bundle(prefix)
    tagger = OriginalMusicnn(name)
    try:
        with torch.no_grad():
            tagger.net.load_tf(tensors)
    except (KeyError, RuntimeError) as exc:
        raise WeightsError(f"checkpoint does not match the {name} architecture (tensor {exc})",
                           Path(prefix + ".index")) from None
    return tagger.to(device).freeze()
