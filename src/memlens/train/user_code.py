"""The user's own code as a trainer: importing a factory or training function from ``PATH.py:FUNC`` or
``package.module:FUNC``, its identity (the SHA-256 of its file or source, part of a run's identity), and the
configuration of a trainer built around such a callable.

Importing a file runs it, as a test runner runs ``conftest.py``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Callable

from .._validation import MemlensInputError

__all__ = ["load_factory", "load_checked", "callable_identity", "user_config", "make_user_config",
           "config_dict"]


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_module_from_file(path: Path):
    name = f"memlens_user_{hashlib.sha256(str(path).encode()).hexdigest()[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise MemlensInputError(f"model: cannot import {str(path)!r} as Python source; pass a .py file",
                                param="model")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)   # runs the user's file, as a test runner runs conftest.py
    except Exception as exc:
        sys.modules.pop(name, None)
        raise MemlensInputError(f"model: importing {str(path)!r} failed ({type(exc).__name__}: {exc}); fix the "
                                "file so that it imports", param="model") from None
    return module


def load_factory(spec: str) -> tuple[Callable, str]:
    """``(factory, sha256)`` of a factory spec ``PATH.py:FUNC`` or ``package.module:FUNC``.

    The hash is that of the file defining the factory (part of a run's identity, so a changed architecture is not
    mistaken for the old one). Importing a file runs it, as a test runner runs ``conftest.py``.
    """
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise MemlensInputError(f"model must be a trainer name or a factory spec PATH.py:FUNC (or "
                                f"package.module:FUNC); got {spec!r}", param="model")
    where, func = spec.split(":")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise MemlensInputError(f"model: the factory file {where!r} does not exist; pass an existing "
                                    "PATH.py:FUNC", param="model")
        module = _load_module_from_file(path)
        digest = _file_sha256(path)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise MemlensInputError(f"model: cannot import module {where!r} ({type(exc).__name__}: {exc}); pass "
                                    "PATH.py:FUNC or an importable package.module:FUNC", param="model") from None
        source = getattr(module, "__file__", None)
        digest = _file_sha256(Path(source)) if source and Path(source).is_file() else "unknown"
    factory = getattr(module, func, None)
    if factory is None or not callable(factory):
        raise MemlensInputError(f"model: {where!r} has no function {func!r}; define "
                                f"def {func}(input_shape, n_classes) returning a torch.nn.Module", param="model")
    return factory, digest


def callable_identity(factory: Callable) -> tuple[str, str]:
    """``(spec, sha256)`` of a factory given as a Python callable: its module and name, and the hash of its
    source (of its file where the source is not available)."""
    module = getattr(factory, "__module__", None) or "?"
    name = getattr(factory, "__qualname__", None) or getattr(factory, "__name__", None) or type(factory).__name__
    try:
        source = inspect.getsource(factory)
        digest = hashlib.sha256(source.encode()).hexdigest()
    except (OSError, TypeError):
        file = getattr(sys.modules.get(module), "__file__", None)
        digest = _file_sha256(Path(file)) if file and Path(file).is_file() else "unknown"
    return f"{module}:{name}", digest


def user_config(cls, key: str, target, settings: dict, *, model: str, prefix: str = ""):
    """A configuration ``cls`` around a user's callable ``target`` (a callable, or a spec ``PATH.py:FUNC``,
    optionally after ``prefix``) stored in field ``key`` with its hash in ``key + "_sha256"``; ``settings`` are the
    other fields (unknown ones refused by name)."""
    names = {f.name for f in dataclasses.fields(cls)} - {"callable_", key, key + "_sha256"}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise MemlensInputError(f"unknown field(s) {', '.join(unknown)} for model {model!r}; valid fields: "
                                f"{', '.join(sorted(names))}", param="model_params")
    if callable(target):
        spec, digest = callable_identity(target)
        return cls(**{key: spec, key + "_sha256": digest, "callable_": target}, **settings)
    if prefix and isinstance(target, str) and target.startswith(prefix):
        target = target[len(prefix):]
    _, digest = load_factory(target)
    return cls(**{key: target, key + "_sha256": digest}, **settings)


def make_user_config(build: Callable, key: str, fields: dict, *, model: str, how: str):
    """The registry's ``make_config`` of a user-code trainer: ``fields[key]`` is required; a recorded hash that
    differs from the file's current one is refused (the code changed since the run was made)."""
    if key not in fields:
        raise MemlensInputError(f"model {model!r} needs {how}", param="model")
    fields = dict(fields)
    target = fields.pop(key)
    fields.pop("name", None)
    digest = fields.pop(key + "_sha256", "")
    cfg = build(target, **fields)
    if digest and getattr(cfg, key + "_sha256") != digest:
        raise MemlensInputError(f"model: the file of {getattr(cfg, key)!r} changed since the run was made (its hash "
                                "differs); start a new run for the new code", param="model")
    return cfg


def load_checked(spec: str, sha256: str) -> Callable:
    """The callable of ``spec``, refused when its file's hash is no longer ``sha256`` (the code changed since the
    configuration was made)."""
    fn, digest = load_factory(spec)
    if sha256 and digest != sha256:
        raise MemlensInputError(f"model: the file of {spec!r} changed since this configuration was made (its hash "
                                "differs); start a new run for the new code", param="model")
    return fn


def config_dict(cfg) -> dict:
    """``to_dict()`` of a user-code configuration: ``name`` and every field but the callable itself (which is
    identified by its spec and hash)."""
    fields = (f.name for f in dataclasses.fields(cfg) if f.name != "callable_")
    return {"name": cfg.name, **{name: getattr(cfg, name) for name in fields}}
