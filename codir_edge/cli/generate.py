"""Typer commands generated from the settings' declarations (``core/settings.py``).

A command file writes only its body, ``def compress(args: Args) -> None``, and decorates it with the
:class:`CommandSpec` of its stage; the parameters Typer reads (flags, types, choices, defaults, help,
sections) are generated here from the declared fields, as transformers' ``HfArgumentParser`` builds
an argparse parser from dataclasses. The body receives the values already parsed into the form the
configs hold, and builds a config with :meth:`Args.config`.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer

from codir_edge.cli.errors import handle_errors
from codir_edge.core.settings import CommandSpec, Option, choice_value, given, scalar_type


class Args:
    """A command's values by setting name, parsed as the configs hold them; ``ctx`` is Typer's context."""

    def __init__(self, options: dict[str, Option], raw: dict[str, Any], ctx: typer.Context | None):
        self._options = options
        self._raw = raw
        self.values = {name: options[name].parse(choice_value(value)) for name, value in raw.items()}
        self.ctx = ctx

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def given(self, name: str) -> bool:
        """Whether the user set ``name`` (its command-line value is not the default)."""
        return given(self._options[name], choice_value(self._raw[name]))

    def config(self, cls: type, **fixed: Any) -> Any:
        """``cls`` built from the values of the fields it declares; ``fixed`` sets others."""
        names = {f.name for f in dataclasses.fields(cls)}
        taken = {name: value for name, value in self.values.items() if name in names and name not in fixed}
        return cls(**taken, **fixed)


def _choice_enum(option: Option) -> type[Enum]:
    """Typer lists choices from an Enum; the members are the declared strings."""
    title = "".join(part.title() for part in option.name.split("_"))
    return Enum(title, {choice: choice for choice in option.flag.choices}, type=str)  # type: ignore[return-value]


def parameter(option: Option) -> inspect.Parameter:
    """One Typer parameter from one declaration."""
    flag = option.flag
    kind, default = option.kind, option.default
    if flag.choices is not None:
        enum = _choice_enum(option)
        optional = scalar_type(kind)[0] is not kind or default is None
        kind = enum | None if optional else enum
        default = enum(default) if isinstance(default, str) else default
    extra: dict[str, Any] = {"help": flag.help}
    if flag.metavar is not None:
        extra["metavar"] = flag.metavar
    if flag.show_default is not True:
        extra["show_default"] = flag.show_default
    if flag.argument:
        info = typer.Argument(**extra)
    else:
        info = typer.Option(*flag.flags, rich_help_panel=flag.panel, **extra)
    return inspect.Parameter(
        option.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=inspect.Parameter.empty if option.required else default,
        annotation=Annotated[kind, info],
    )


def command(spec: CommandSpec, *, context: bool = False) -> Callable[[Callable[[Args], None]], Callable[..., None]]:
    """Decorate ``body(args)``: the result is a Typer command taking every declared setting of ``spec``.

    Parsing happens inside the error handler, so a value that a declaration's parser refuses is the
    same one-line error, with exit code 2, as any other bad input."""

    def decorate(body: Callable[[Args], None]) -> Callable[..., None]:
        options = spec.options()
        params = [parameter(option) for option in options.values()]
        if context:
            params.insert(0, inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))

        @handle_errors
        def generated(ctx: typer.Context | None = None, **raw: Any) -> None:
            body(Args(options, raw, ctx))

        generated.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        generated.__annotations__ = {}
        generated.__name__ = body.__name__
        generated.__qualname__ = body.__qualname__
        generated.__doc__ = body.__doc__
        generated.__module__ = body.__module__
        del generated.__wrapped__  # typer must read the generated signature, not the wrapper's
        generated.body = body  # type: ignore[attr-defined]
        return generated

    return decorate
