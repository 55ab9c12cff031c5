"""The files of a multipart/form-data body already in memory, read without the event loop.

Starlette's parser is async and spools each file to a temporary file: it can only run on the loop.
This one is a plain function over the same push parser (python-multipart), so a large body can be
read in a worker thread (service.budget), and it tells a truncated body from an empty one.
"""

from __future__ import annotations

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import MalformedBody


class _Files:
    """The parser's callbacks: collect each part with a filename, and whether the closing boundary came."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes]] = []
        self.ended = False
        self._header: tuple[bytes, bytes] = (b"", b"")
        self._disposition = b""
        self._data: list[bytes] = []

    def part_begin(self) -> None:
        self._disposition, self._data = b"", []

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header = (self._header[0] + data[start:end], self._header[1])

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header = (self._header[0], self._header[1] + data[start:end])

    def header_end(self) -> None:
        if self._header[0].lower() == b"content-disposition":
            self._disposition = self._header[1]
        self._header = (b"", b"")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        self._data.append(data[start:end])

    def part_end(self) -> None:
        filename = parse_options_header(self._disposition)[1].get(b"filename")
        if filename is not None:  # a part without one is a form field: not an image
            self.files.append((filename.decode("utf-8", "replace"), b"".join(self._data)))

    def end(self) -> None:
        self.ended = True


def form_files(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """(filename, content) of each file part, in order; MalformedBody (400) for a body that cannot be read whole."""
    if not body:
        raise MalformedBody("empty body: expected multipart form data")
    boundary = parse_options_header(content_type)[1].get(b"boundary")
    if not boundary:
        raise MalformedBody("malformed multipart body: the Content-Type has no boundary")
    files = _Files()
    callbacks = {"on_part_begin": files.part_begin, "on_header_field": files.header_field,
                 "on_header_value": files.header_value, "on_header_end": files.header_end,
                 "on_part_data": files.part_data, "on_part_end": files.part_end, "on_end": files.end}  # fmt: skip
    try:
        MultipartParser(boundary, callbacks).write(body)  # type: ignore[arg-type]
    except FormParserError as e:
        raise MalformedBody(f"malformed multipart body: {e}") from None
    if not files.ended:
        raise MalformedBody("malformed multipart body: truncated, it ends before the closing boundary")
    return files.files
