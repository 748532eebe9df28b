"""Wire details of the Cloud Storage JSON API the emulator needs: resources and checksums.

Kept apart from :mod:`notraining_testkit.emulators.gcs` so the emulator reads as its endpoints.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


def json_or_empty(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body) if body else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def crc32c(data: bytes) -> str:
    """Base64 of the big-endian CRC32C, the form the JSON API uses."""
    try:
        import google_crc32c  # noqa: PLC0415 - the agent's own dependency

        value = int(google_crc32c.value(data))
    except ImportError:
        value = crc32c_python(data)
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE: list[int] = []


def crc32c_python(data: bytes) -> int:
    """CRC32C (Castagnoli) without google-crc32c; slow, fine for test-sized objects."""
    if not _TABLE:
        _TABLE.extend(_crc32c_table())
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def md5(data: bytes) -> str:
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass
class StoredObject:
    """An object's bytes and the metadata the JSON API returns for it."""

    bucket: str
    name: str
    data: bytes
    content_type: str
    metadata: dict[str, str]
    generation: int
    updated: float

    def resource(self, base: str) -> dict[str, Any]:
        """The object resource, as ``GET .../o/{object}`` returns it."""
        quoted = quote(self.name, safe="")
        return {
            "kind": "storage#object",
            "id": f"{self.bucket}/{self.name}/{self.generation}",
            "selfLink": f"{base}/storage/v1/b/{self.bucket}/o/{quoted}",
            "mediaLink": f"{base}/download/storage/v1/b/{self.bucket}/o/{quoted}"
            f"?generation={self.generation}&alt=media",
            "name": self.name,
            "bucket": self.bucket,
            "generation": str(self.generation),
            "metageneration": "1",
            "contentType": self.content_type,
            "storageClass": "STANDARD",
            "size": str(len(self.data)),
            "md5Hash": md5(self.data),
            "crc32c": crc32c(self.data),
            "etag": f"CP{self.generation}=",
            "timeCreated": _iso(self.updated),
            "updated": _iso(self.updated),
            **({"metadata": self.metadata} if self.metadata else {}),
        }


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000Z"
