"""One registry per kind of component (tasks, protocols, label-set methods), filled by the file that
defines each entry, as timm's ``@register_model`` fills its model registry.

A registry may name a package: on the first lookup every module of that package is imported, so an
entry is one new file in it, with no list to edit. An unknown name is an error with the nearest names.
"""

import difflib
import importlib
import pkgutil
from collections.abc import Callable


class UnknownNameError(ValueError):
    pass


def unknown_name(kind: str, name: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}{hint} ({kind}s: {', '.join(known)})")


class Registry:
    def __init__(self, kind: str, package: str | None = None):
        self.kind, self.package = kind, package
        self._entries: dict[str, object] = {}
        self._imported = package is None

    def register(self, name: str) -> Callable:
        """A decorator: ``@TASKS.register("sun397")`` above the entry (any object)."""

        def add(entry):
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def _import_package(self) -> None:
        if not self._imported:
            self._imported = True
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__):
                if not module.name.startswith("_"):
                    importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> list[str]:
        self._import_package()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._import_package()
        return name in self._entries

    def __getitem__(self, name: str):
        self._import_package()
        if name not in self._entries:
            raise unknown_name(self.kind, name, self.names())
        return self._entries[name]
