"""Per-file results as text for a terminal and as markdown for a Prefect artifact."""

from __future__ import annotations

from .load import FileSummary, TableDescription

# The key flowops reads a run's summary from (a table artifact of {"measure", "value"} rows): the pull request's
# comment shows a sample run's summary beside the latest staging run's, differences marked.
SUMMARY_ARTIFACT_KEY = "flowops-summary"

_HEADINGS = ("file", "rows loaded", "rejected", "seconds", "rows/s", "status")


def _cells(summary: FileSummary, show_error: bool = True) -> tuple[str, ...]:
    if summary.error:
        status = f"FAILED: {summary.error}" if show_error else "FAILED (see below)"
    elif summary.already_loaded:
        status = "already loaded, unchanged"
    else:
        status = "loaded"
    return (
        summary.source,
        f"{summary.rows_loaded:,}",
        f"{summary.rows_rejected:,}",
        f"{summary.seconds:.2f}",
        f"{summary.rows_per_second:,.0f}",
        status,
    )


def summary_text(summaries: list[FileSummary]) -> str:
    rows = [_HEADINGS, *(_cells(summary, show_error=False) for summary in summaries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADINGS) - 1)]
    lines = []
    for row in rows:
        numbers = [
            cell.rjust(width) if i else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join([*numbers, row[-1]]))
    return "\n".join(lines)


def summary_markdown(summaries: list[FileSummary]) -> str:
    lines = ["| " + " | ".join(_HEADINGS) + " |", "|" + "---|" * len(_HEADINGS)]
    for summary in summaries:
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(summary)) + " |")
    total = sum(summary.rows_loaded for summary in summaries)
    rejected = sum(summary.rows_rejected for summary in summaries)
    return "\n".join(
        ["# E-commerce events load", "", *lines, "", f"Total: {total:,} rows loaded, {rejected:,} rejected."]
    )


def summary_measures(summaries: list[FileSummary], table: TableDescription | None) -> list[dict[str, object]]:
    """The run's summary as flowops shows it on a pull request: rows loaded and rejected per file, then what the
    table holds (rows per event type, each column's type)."""
    rows: list[dict[str, object]] = []
    for summary in summaries:
        if summary.error:
            rows.append({"measure": f"{summary.source}: status", "value": "FAILED"})
            continue
        rows.append({"measure": f"{summary.source}: rows loaded", "value": summary.rows_loaded})
        rows.append({"measure": f"{summary.source}: rows rejected", "value": summary.rows_rejected})
    if table is not None:
        rows += [{"measure": f"rows with event_type {k}", "value": v} for k, v in table.rows_per_event_type.items()]
        rows += [{"measure": f"column {name}", "value": kind} for name, kind in table.column_types.items()]
    return rows
