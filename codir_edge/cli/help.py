"""Help rendered as plain text, grouped in the sections the options declare.

Typer's Rich help parses every help string as Rich markup (so "[default: 1,2]" or "[[budget]]"
vanish) and, at 80 columns, crops long words in its narrow help column ("model.strings.on…"). Click's
own formatter (vendored by Typer) wraps instead of cropping and prints text as written; this command class only adds the
sections (``rich_help_panel``) that make a 40-option command readable.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand

WIDEST = 120  # a wide terminal gets lines up to this long; narrow ones wrap at their width


class SectionedCommand(TyperCommand):
    """A command whose help lists Arguments, then Options, then each named section in order."""

    def format_options(self, ctx: typer.Context, formatter: Any) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                section = "Arguments"
            else:
                section = getattr(param, "rich_help_panel", None) or "Options"
            sections.setdefault(section, []).append(record)
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
