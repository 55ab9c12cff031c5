"""The catalogue: every served model version by name, the `stable` and `latest` of each, following the store.

`refresh()` brings it in line with the store, with no restart: a new version is loaded and warmed
before it takes traffic; alias changes apply at once, whole (a request resolves one version and is
answered by it); a removed version stops taking requests and is closed after a grace period, once
the requests that resolved it have been answered; a version that fails to load is skipped with its
reason and not retried until its folder changes. `watch()` refreshes on filesystem events, and every
`interval` seconds in any case (a polling fallback for stores where events do not arrive).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import watchfiles

from models import CheckpointError, CheckpointStore, InvalidNameError
from models.aliases import LATEST, STABLE, AliasError
from models.store import check_name
from service.core.errors import InvalidModelName, UnknownModel, UnknownVersion
from service.core.runtime import Runtime
from service.core.served import ServedModel

log = logging.getLogger(__name__)
ALIASES = (STABLE, LATEST)


@dataclass
class Served:
    """What is served of one model: its loaded versions and which of them `stable` names."""

    versions: dict[int, ServedModel] = field(default_factory=dict)
    stable: int | None = None  # None: `stable` means the latest

    def resolve(self, version: int | str | None) -> ServedModel | None:
        if version is None or version == STABLE:
            version = self.stable if self.stable in self.versions else LATEST
        if version == LATEST:
            return self.versions[max(self.versions)]
        return self.versions.get(version) if isinstance(version, int) else None


def _signature(folder: Path) -> tuple[int, int]:
    """A version folder's identity: replaced or rewritten by hand, it changes."""
    stat = folder.stat()
    return stat.st_ino, stat.st_mtime_ns


class Catalog:
    def __init__(self, store: CheckpointStore, runtime: Runtime, max_versions: int = 4, grace: float = 30.0) -> None:
        self.store = store
        self.runtime = runtime  # where the versions' passes run
        self.max_versions = max_versions  # loaded per model: `stable`'s and `latest`'s always, then the newest
        self.grace = grace  # seconds a removed version keeps answering the requests that resolved it
        self.skipped: dict[str, str] = {}  # "name/version" (or another store entry) -> why it is not served
        self.closing = False
        self._models: dict[str, Served] = {}
        self._signatures: dict[tuple[str, int], tuple[int, int]] = {}
        self._failed: dict[tuple[str, int], tuple[tuple[int, int], str]] = {}
        self._retiring: dict[asyncio.Task[None], ServedModel] = {}
        self._refreshing = asyncio.Lock()

    @classmethod
    async def load(
        cls, store: CheckpointStore, runtime: Runtime, max_versions: int = 4, grace: float = 30.0
    ) -> Catalog:
        """Every valid version in the store (up to `max_versions` per model), loaded, warmed and started."""
        catalog = cls(store, runtime, max_versions, grace)
        if not store.root.is_dir():
            log.error("the checkpoint store %s does not exist: no model to serve", store.root.resolve())
        await catalog.refresh()
        log.info("serving %d versions of %d models on %s", len(catalog), len(catalog._models), runtime.device)
        return catalog

    async def refresh(self) -> bool:
        """Bring what is served in line with the store; True if anything changed.

        One at a time (the watcher and a V2 repository `load` may ask together): a second waits, then
        finds the first's work done.
        """
        async with self._refreshing:
            return await self._refresh()

    async def _refresh(self) -> bool:
        skipped = dict(self.store.problems())
        for entry, reason in skipped.items():
            if self.skipped.get(entry) != reason:  # said once, not at every refresh
                log.warning("not serving %s: %s", entry, reason)
        models: dict[str, Served] = {}
        for name in self.store.names():
            served = await self._refresh_model(name, skipped)
            if served.versions:
                models[name] = served
        retired = [s for name, old in self._models.items() for v, s in old.versions.items()
                   if models.get(name, Served()).versions.get(v) is not s]  # fmt: skip
        changed = bool(retired) or _layout(models) != _layout(self._models)
        self._models, self.skipped = models, skipped  # one step: every request sees the old state or the new
        for gone in retired:
            self._signatures.pop((gone.name, gone.version), None)
            task = asyncio.get_running_loop().create_task(self._retire(gone))
            self._retiring[task] = gone
            task.add_done_callback(self._retiring.pop)
        if changed:
            log.info("now serving %s", _describe(models))
            if self.runtime.metrics:
                self.runtime.metrics.serving({name: len(served.versions) for name, served in models.items()})
            # Collect what is not frozen, freeze what was loaded. Never unfreeze: a collection over torch and
            # every loaded model pauses the event loop 100+ ms at each reload; a retired version holds no
            # cycle and is freed by its reference count, frozen or not (tests/service/test_reload_pauses.py).
            gc.collect()
            gc.freeze()
        return changed

    async def _refresh_model(self, name: str, skipped: dict[str, str]) -> Served:
        old = self._models.get(name, Served())
        try:
            stable = self.store.aliases(name).stable
        except AliasError as e:
            skipped[f"{name}/aliases.json"] = f"{e}; keeping stable at {old.stable or LATEST}"
            stable = old.stable
        on_disk = sorted(self.store.versions(name), reverse=True)
        served = Served()
        if stable in on_disk and (kept := await self._version(name, stable, old, skipped)) is not None:
            served.versions[stable] = kept
        has_latest = False
        for version in on_disk:  # newest first: the first that loads is `latest`, kept whatever the limit
            if version in served.versions:
                has_latest = True
                continue
            if has_latest and len(served.versions) >= self.max_versions:
                break
            loaded = await self._version(name, version, old, skipped)
            if loaded is not None:
                served.versions[version] = loaded
                has_latest = True
        if stable is not None and stable not in served.versions:
            # A promoted version that is gone or broken: keep the one in force, or fall back to the latest.
            skipped.setdefault(f"{name}/{stable}", "named by the stable alias but not loadable")
            stable = old.stable if old.stable in served.versions else None
        served.stable = stable
        return served

    async def _version(self, name: str, version: int, old: Served, skipped: dict[str, str]) -> ServedModel | None:
        """The loaded version (kept if unchanged, else loaded now), or None with the reason in `skipped`."""
        key = (name, version)
        try:
            signature = _signature(self.store.path(name, version))
        except OSError:
            return None  # removed while we looked
        if old.versions.get(version) is not None and self._signatures.get(key) == signature:
            return old.versions[version]
        failed = self._failed.get(key)
        if failed is not None and failed[0] == signature:
            skipped[f"{name}/{version}"] = failed[1]
            return None
        try:
            loaded = await ServedModel.load(self.store, name, version, self.runtime)
        except CheckpointError as e:
            root = self.store.root
            reason = f"{e.path.relative_to(root) if e.path.is_relative_to(root) else e.path.name}: {e.reason}"
            self._failed[key] = (signature, reason)  # the store's location stays off /readyz
            skipped[f"{name}/{version}"] = reason
            log.warning("not serving %s version %d: %s", name, version, e)
            return None
        self._failed.pop(key, None)
        self._signatures[key] = signature
        log.info("loaded %s version %d", name, version)
        return loaded

    async def _retire(self, served: ServedModel) -> None:
        """Unload a version: no new request finds it; those that did are answered first."""
        await asyncio.sleep(self.grace)
        await served.close()
        if self.runtime.metrics:
            self.runtime.metrics.forget(served.name, served.version)
        log.info("unloaded %s version %d", served.name, served.version)

    async def watch(self, interval: float, stop: asyncio.Event) -> None:
        """Refresh on changes in the store, and every `interval` seconds, until `stop` is set; 0: never.

        Where filesystem events cannot be had (no store yet, a file system without them), it polls.
        """
        if interval <= 0:
            return
        root = self.store.root
        while not stop.is_set():
            if root.is_dir():
                try:
                    async for _ in watchfiles.awatch(
                        root, stop_event=stop, rust_timeout=int(interval * 1000), yield_on_timeout=True
                    ):
                        await self._refresh_logged()
                    return  # stopped
                except OSError as e:
                    log.warning("watching %s failed (%s): polling it every %g s", root, e, interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            await self._refresh_logged()

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
        except Exception:  # a store that cannot be read now may be readable at the next try
            log.exception("reloading the store %s failed; serving what was loaded", self.store.root)

    def __len__(self) -> int:
        return sum(len(served.versions) for served in self._models.values())

    def __iter__(self) -> Iterator[ServedModel]:
        for served in self._models.values():
            yield from served.versions.values()

    def names(self) -> list[str]:
        return sorted(self._models)

    def versions(self, name: str) -> list[int]:
        """The served versions of `name`, oldest first."""
        return sorted(self._served(name).versions)

    def aliases(self, name: str) -> dict[str, int]:
        """The version each alias names now."""
        served = self._served(name)
        return {alias: served.resolve(alias).version for alias in ALIASES}  # type: ignore[union-attr]

    def resolve(self, name: str, version: int | str | None) -> ServedModel:
        """The requested version: a number, "stable" or "latest"; None means "stable"."""
        served = self._served(name)
        found = served.resolve(version)
        if found is None:
            raise UnknownVersion(name, STABLE if version is None else version, sorted(served.versions))
        return found

    def _served(self, name: str) -> Served:
        return self._models.get(name) or self._missing(name)

    def _missing(self, name: str) -> NoReturn:
        try:
            check_name(name)
        except InvalidNameError as e:
            raise InvalidModelName(str(e)) from None  # a name that could never exist says why
        raise UnknownModel(name, self.names())

    async def close(self) -> None:
        """Refuse new requests, answer every queued one, stop every batcher (retiring ones too, now)."""
        self.closing = True
        retiring = list(self._retiring.values())
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*(served.close() for served in [*self, *retiring]))


def _layout(models: dict[str, Served]) -> dict[str, tuple[list[int], int | None]]:
    return {name: (sorted(served.versions), served.stable) for name, served in models.items()}


def _describe(models: dict[str, Served]) -> str:
    return "; ".join(f"{name} {sorted(s.versions)} stable {s.stable or LATEST}" for name, s in sorted(models.items()))
