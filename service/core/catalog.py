"""The catalogue: every served model version by name and version, and the versions skipped with why."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import NoReturn

from models import CheckpointError, CheckpointStore, InvalidNameError
from models.store import check_name
from service.core.errors import InvalidModelName, UnknownModel, UnknownVersion
from service.core.runtime import Runtime
from service.core.served import ServedModel

log = logging.getLogger(__name__)


class Catalog:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime  # where the versions' passes run; later versions start there too
        self.skipped: dict[str, str] = {}  # "name/version" -> why it is not served
        self.closing = False
        self._models: dict[str, dict[int, ServedModel]] = {}

    @classmethod
    async def load(cls, store: CheckpointStore, runtime: Runtime) -> Catalog:
        """Every valid version in the store, loaded, warmed and started; a broken one skipped with a logged reason."""
        catalog = cls(runtime)
        if not store.root.is_dir():
            log.error("the checkpoint store %s does not exist: no model to serve", store.root.resolve())
        catalog.skipped.update(store.problems())
        for entry, reason in catalog.skipped.items():
            log.warning("not serving %s: %s", entry, reason)
        for name in store.names():
            for version in store.versions(name):
                await catalog._load_version(store, name, version)
        log.info("serving %d versions of %d models on %s", len(catalog), len(catalog._models), runtime.device)
        return catalog

    async def _load_version(self, store: CheckpointStore, name: str, version: int) -> None:
        try:
            served = await ServedModel.load(store, name, version, self.runtime)
        except CheckpointError as e:
            # Paths relative to the store: the reason is shown on /readyz, the store's location is not.
            where = e.path.relative_to(store.root) if e.path.is_relative_to(store.root) else e.path.name
            self.skipped[f"{name}/{version}"] = f"{where}: {e.reason}"
            log.warning("not serving %s version %d: %s", name, version, e)
            return
        self._models.setdefault(name, {})[version] = served

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._models.values())

    def __iter__(self) -> Iterator[ServedModel]:
        for versions in self._models.values():
            yield from versions.values()

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[int]:
        """The served versions of `name`, oldest first."""
        return sorted(self._models.get(name) or self._missing(name))

    def resolve(self, name: str, version: int | None) -> ServedModel:
        """The requested version, or the latest."""
        versions = self._models.get(name) or self._missing(name)
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise UnknownVersion(name, version, sorted(versions))
        return versions[version]

    def _missing(self, name: str) -> NoReturn:
        try:
            check_name(name)
        except InvalidNameError as e:
            raise InvalidModelName(str(e)) from None  # a name that could never exist says why
        raise UnknownModel(name, self.names())

    async def close(self) -> None:
        """Refuse new requests, answer every queued one, stop every batcher."""
        self.closing = True
        await asyncio.gather(*(served.close() for served in self))
