"""Tables people read in a terminal or a pipe: fitted to the width, nothing cut.

Rich shrinks a table that is too wide by cutting cells with "…", which loses numbers and markers
(a fitness of "-0.0079…", the best row's "*"). ``fitted_table`` never does: a column whose cells
must stay whole (numbers, labels, markers) keeps the width of its widest cell, headers and text
wrap at spaces, and when even that does not fit, whole columns are left out, least important first,
and the caption says which. A pipe gets the same table at 80 columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Col:
    """A column of a ``fitted_table``: its header, how much it matters (0 most; the highest number is
    dropped first when the terminal is too narrow), and whether its cells may wrap (names, messages)
    or never (numbers, labels, markers: always shown whole)."""

    header: str
    priority: int = 0
    wrap: bool = False
    justify: Literal["left", "center", "right"] = "left"


def clip(text: str, limit: int, where: str = "") -> str:
    """``text`` whole up to ``limit`` characters; longer, its first ``limit`` and how much more there is
    (and ``where`` to read it), never an ellipsis that reads like a cut number."""
    if len(text) <= limit:
        return text
    return text[:limit].rstrip() + f" [+{len(text) - limit} characters{' ' + where if where else ''}]"


#: the narrowest a wrapping column is squeezed to before columns are dropped
MIN_WRAP_WIDTH = 16


def fitted_table(cols: list[Col], rows: list[list[str]], width: int, title: str | None = None,
                 caption: str | None = None, more: str = "--json has every field"):
    """A Rich table that fits ``width`` columns with nothing cut: cells that must not wrap (numbers,
    markers) keep their whole width, headers and text cells wrap at spaces, and when even that does
    not fit, whole columns are left out, the least important first (the caption names them, and
    ``more`` says where to see them).

    Cells are plain text (markup is not read): escape nothing, truncate nothing."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    def need(i: int) -> int:  # the width column i cannot go below
        words = [len(w) for w in cols[i].header.split()] or [0]
        cells = [len(r[i]) for r in rows] or [0]
        if cols[i].wrap:
            longest = max(max(cells), max(words))
            return min(longest, max(MIN_WRAP_WIDTH, max(words)))
        return max(max(cells), max(words))

    keep = list(range(len(cols)))
    dropped: list[str] = []
    # the box's overhead: a border on each side and a separator plus padding of 1 on each side per column
    while len(keep) > 1 and sum(need(i) for i in keep) + 3 * len(keep) + 1 > width:
        worst = max(keep[1:], key=lambda i: (cols[i].priority, i))  # the first column names the row: kept
        keep.remove(worst)
        dropped.append(cols[worst].header)
    if dropped:
        note = f"left out at {width} columns: {', '.join(dropped)}" + (f" ({more})" if more else "")
        caption = f"{caption}; {note}" if caption else note
    table = Table(title=Text(title) if title else None, caption=Text(caption) if caption else None,
                  caption_justify="left", title_justify="left", box=box.SQUARE)
    for i in keep:
        table.add_column(cols[i].header, justify=cols[i].justify, overflow="fold",
                         min_width=None if cols[i].wrap else need(i), no_wrap=False)
    for r in rows:
        table.add_row(*(Text(r[i]) for i in keep))
    return table


