"""A reader of TensorFlow's checkpoint tensor-bundle format (``.index`` + ``.data-*``), without TensorFlow.

Written from the format's public description (verified facts in the project's reference notes):

- ``.index`` is a LevelDB-style table: a 48-byte footer holds two block handles (varint64 offset
  and size: metaindex, then index) and ends with the magic ``0xdb4775248b80fb57``; every block is
  followed by a 5-byte trailer (compression type, masked CRC-32C of block + type); blocks hold
  prefix-compressed entries ``varint32 shared, varint32 unshared, varint32 value_len, key suffix,
  value`` followed by the restart array and its count.
- the index block maps separator keys to handles of data blocks; data blocks map tensor names to
  ``BundleEntryProto`` messages (dtype, shape, shard, offset, size, masked crc32c); the empty key
  holds the bundle header.
- ``.data-00000-of-00001`` holds the raw little-endian tensor bytes.

Only float32 tensors in a single uncompressed shard are supported (all musicnn checkpoints).
"""

from __future__ import annotations

import struct
from pathlib import Path

import crc32c
import numpy as np

from ..errors import WeightsError

_MAGIC = 0xDB4775248B80FB57
_FOOTER = 48
_TRAILER = 5
_MASK_DELTA = 0xA282EAD8
_DT_FLOAT = 1


def masked_crc32c(data: bytes) -> int:
    """CRC-32C of ``data``, masked as LevelDB/TensorFlow store it."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buffer[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(message: bytes) -> list[tuple[int, int | bytes]]:
    """Decode a protobuf message into (field number, value) pairs (varint, fixed32/64, bytes)."""
    out, pos = [], 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", message, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", message, pos)[0], pos + 4
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = message[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def _block(index: bytes, offset: int, size: int) -> bytes:
    """A table block after checking its trailer (no compression, masked CRC)."""
    block = index[offset : offset + size]
    trailer = index[offset + size : offset + size + _TRAILER]
    if len(block) != size or len(trailer) != _TRAILER:
        raise ValueError("block runs past the end of the file")
    if trailer[0] != 0:
        raise ValueError(f"compressed block (type {trailer[0]}) is not supported")
    if masked_crc32c(block + trailer[:1]) != struct.unpack("<I", trailer[1:])[0]:
        raise ValueError("block checksum mismatch")
    return block


def _entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one block, keys un-prefix-compressed."""
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + length]))
        pos += length
    return entries


def _entry(value: bytes) -> tuple[int, tuple[int, ...], int, int, int | None]:
    """(dtype, shape, offset, size, crc) of a BundleEntryProto."""
    dtype, shape, offset, size, crc = 0, (), 0, 0, None
    for number, field in _fields(value):
        if number == 1:
            dtype = field
        elif number == 2:
            shape = tuple(dict(_fields(dim)).get(1, 0) for n, dim in _fields(field) if n == 2)
        elif number == 3 and field != 0:
            raise ValueError("multi-shard bundles are not supported")
        elif number == 4:
            offset = field
        elif number == 5:
            size = field
        elif number == 6:
            crc = field
        elif number == 7:
            raise ValueError("sliced tensors are not supported")
    return dtype, shape, offset, size, crc


def read_bundle(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint ``prefix`` (files ``<prefix>.index``, ``<prefix>.data-00000-of-00001``).

    Each tensor's masked CRC-32C is verified.

    Raises:
        WeightsError: naming the file, when either file is missing, truncated or corrupt.
    """
    prefix = str(prefix)
    index_path, data_path = Path(prefix + ".index"), Path(prefix + ".data-00000-of-00001")
    for path in (index_path, data_path):
        if not path.is_file():
            raise WeightsError("checkpoint file not found", path)
    index, data = index_path.read_bytes(), data_path.read_bytes()
    try:
        if len(index) < _FOOTER or struct.unpack("<Q", index[-8:])[0] != _MAGIC:
            raise ValueError("not a tensor-bundle index (bad footer magic)")
        pos = len(index) - _FOOTER
        _, pos = _varint(index, pos)  # metaindex offset
        _, pos = _varint(index, pos)  # metaindex size
        index_offset, pos = _varint(index, pos)
        index_size, _ = _varint(index, pos)
        handles = []
        for _, handle in _entries(_block(index, index_offset, index_size)):
            offset, p = _varint(handle, 0)
            handles.append((offset, _varint(handle, p)[0]))
        entries = [e for offset, size in handles for e in _entries(_block(index, offset, size))]
    except (ValueError, IndexError, struct.error) as exc:
        raise WeightsError(f"corrupt checkpoint index ({exc})", index_path) from None
    tensors = {}
    for key, value in entries:
        if key == b"":
            continue  # the bundle header
        name = key.decode()
        try:
            dtype, shape, offset, size, crc = _entry(value)
        except (ValueError, IndexError, struct.error) as exc:
            raise WeightsError(f"corrupt entry for tensor {name} ({exc})", index_path) from None
        if dtype != _DT_FLOAT:
            raise WeightsError(f"tensor {name} has unsupported dtype enum {dtype}", index_path)
        raw = data[offset : offset + size]
        if len(raw) != size or size != 4 * int(np.prod(shape, dtype=np.int64)):
            raise WeightsError(f"tensor {name} is truncated ({len(raw)} of {size} bytes)", data_path)
        if crc is not None and masked_crc32c(raw) != crc:
            raise WeightsError(f"checksum mismatch in tensor {name}", data_path)
        tensors[name] = np.frombuffer(raw, "<f4").reshape(shape).copy()
    return tensors
