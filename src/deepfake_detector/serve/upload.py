"""Receiving an uploaded audio file safely, for the web service.

The multipart body is parsed as it streams in and the file part is copied into a caller-chosen file under a byte
cap, so an oversized upload is refused after reading at most the cap, never buffered whole. The format is sniffed
from the file's first bytes (the decoder is chosen by extension, so a name cannot steer it), and the client's file
name is reduced to a harmless display string; it never becomes part of a server path.
"""
from __future__ import annotations

import os
import re
import unicodedata
from typing import AsyncIterator, BinaryIO

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

# One sniffer for the decoder and the service: the format is read from the content, never from the name.
from deepfake_detector.data.audio import SUPPORTED_FORMATS, sniff_format as sniff_audio_format  # noqa: F401

# Bytes a multipart envelope adds around the file (boundaries, part headers, a long file name).
MULTIPART_SLACK_BYTES = 64 * 1024

_SAFE_NAME_CHARS = re.compile(r"[^\w.\- ()\[\]+,]", flags=re.UNICODE)
_MAX_NAME_CHARS = 120


class UploadError(Exception):
    """An upload refused before decoding; `status_code` is the HTTP status, str(error) the reason."""

    def __init__(self, status_code: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status_code = status_code
        self.headers = dict(headers or {})  # extra response headers (Retry-After, Connection)


def too_large(max_bytes: int) -> UploadError:
    return UploadError(413, f"file too large: the limit is {max_bytes / 2**20:.3g} MB")


def display_name(client_name: str | None) -> str:
    """A client-supplied file name reduced to a short, printable base name (no directories, no control chars)."""
    base = re.split(r"[/\\]", client_name or "")[-1]
    base = unicodedata.normalize("NFC", base)
    base = _SAFE_NAME_CHARS.sub("_", base).strip(" .")
    if len(base) > _MAX_NAME_CHARS:
        stem, suffix = os.path.splitext(base)
        suffix = suffix[:10]
        base = stem[:_MAX_NAME_CHARS - len(suffix)] + suffix
    return base or "upload"


class _FilePartCopier:
    """python-multipart callbacks that copy the part named `field` into `destination`, counting its bytes."""

    def __init__(self, field: str, destination: BinaryIO, max_bytes: int):
        self.field, self.destination, self.max_bytes = field.encode(), destination, max_bytes
        self.client_name: str | None = None
        self.bytes_written = 0
        self.complete = False
        self._copying = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin, "on_header_field": self._header_field,
            "on_header_value": self._header_value_part, "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._disposition, self._copying = b"", False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        # Only the first file part with the right name is kept; other fields are read past and ignored.
        if options.get(b"name") == self.field and b"filename" in options and self.client_name is None:
            self.client_name = options[b"filename"].decode("utf-8", errors="replace")
            self._copying = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._copying:
            return
        self.bytes_written += end - start
        if self.bytes_written > self.max_bytes:
            raise too_large(self.max_bytes)
        self.destination.write(data[start:end])

    def _part_end(self) -> None:
        if self._copying:
            self.complete, self._copying = True, False


async def receive_file_field(content_type: str | None, content_length: str | None, body: AsyncIterator[bytes],
                             destination: BinaryIO, max_bytes: int, field: str = "file") -> tuple[str, int]:
    """Stream a multipart body, copying the file in `field` to `destination`; returns (client name, bytes).

    Raises UploadError: 413 as soon as the declared or received size passes the cap, 400/422 for a malformed
    body or a missing field.
    """
    media_type, options = parse_options_header(content_type)
    if media_type != b"multipart/form-data" or b"boundary" not in options:
        raise UploadError(415, f"send the audio as multipart/form-data with the file in a field named '{field}'")
    body_cap = max_bytes + MULTIPART_SLACK_BYTES
    if content_length and content_length.isdigit() and int(content_length) > body_cap:
        raise too_large(max_bytes)
    copier = _FilePartCopier(field, destination, max_bytes)
    received = 0
    try:
        # Built inside the try: python-multipart refuses a boundary over 256 characters with a ValueError.
        parser = MultipartParser(options[b"boundary"], copier.callbacks())
        async for chunk in body:
            received += len(chunk)
            if received > body_cap:
                raise too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except (MultipartParseError, FormParserError, ValueError) as error:
        raise UploadError(400, f"malformed multipart body ({error})") from error
    if copier.client_name is None:
        raise UploadError(422, f"no file in the form: attach the audio as the field '{field}'")
    if not copier.complete:
        raise UploadError(400, "the upload ended before the file was complete")
    return copier.client_name, copier.bytes_written
