"""Command line for people: `python -m flows.ecommerce generate|ingest ...`.

`ingest` runs the flow when a Prefect API is configured (PREFECT_API_URL) and otherwise calls the
load code directly, which starts in half a second instead of Prefect's 15-30 s ephemeral server.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Self

from .load import DEFAULT_BLOCK_SIZE, FileSummary, failed, load_file, prepare_tables
from .redact import redact, secrets_of, shown_url
from .report import summary_text
from .settings import DATABASE_URL_VARIABLE, database_url_from_environment, embedded_database_url
from .sources import DATA_DIR_VARIABLE, fetch, local_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.ecommerce", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write a synthetic month file with the real header and quirks")
    generate.add_argument("--month", default="2019-10", help="YYYY-MM (default: 2019-10)")
    generate.add_argument("--rows", type=int, default=100_000, help="rows to write (default: 100000)")
    generate.add_argument("--out", type=Path, default=Path("data"), help="folder to write into (default: data)")
    generate.add_argument("--seed", type=int, default=0, help="the same seed gives the same file (default: 0)")

    ingest = commands.add_parser("ingest", help="load event files into the database")
    ingest.add_argument("sources", nargs="+", metavar="FILE_OR_URL")
    ingest.add_argument(
        "--database-url",
        default=None,
        help=f"postgresql://... or sqlite:///path (default: ${DATABASE_URL_VARIABLE}, else an embedded SQLite file)",
    )
    ingest.add_argument("--table", default="ecommerce_events")
    ingest.add_argument("--concurrency", type=int, default=2, help="files loaded at once (default: 2)")
    ingest.add_argument("--chunk-size", type=int, default=DEFAULT_BLOCK_SIZE, help="bytes per block (default: 8 MiB)")
    ingest.add_argument(
        "--replace", action="store_true", help="replace the rows of a loaded file whose content changed (else refused)"
    )

    args = parser.parse_args(argv)
    if args.command == "generate":
        from .generate import generate_month  # numpy-heavy; ingest does not need it

        started = time.perf_counter()
        path = generate_month(args.month, args.rows, args.out, args.seed)
        print(f"wrote {args.rows:,} rows to {path} in {time.perf_counter() - started:.1f} s")
        return 0
    return _ingest(args)


def _ingest(args: argparse.Namespace) -> int:
    url = args.database_url or database_url_from_environment()
    if not url:
        url = embedded_database_url()
        print(f"warning: no --database-url and no ${DATABASE_URL_VARIABLE}: using {url}", file=sys.stderr)
    summaries = _ingest_as_flow_run(args, url) if os.environ.get("PREFECT_API_URL") else _ingest_directly(args, url)
    print(summary_text(summaries))
    failed = [summary for summary in summaries if summary.error]
    for summary in failed:
        print(f"error: {summary.error}", file=sys.stderr)
    return 1 if failed else 0


def _ingest_as_flow_run(args: argparse.Namespace, url: str) -> list[FileSummary]:
    from .flow import ingest_events

    os.environ[DATABASE_URL_VARIABLE] = url  # reaches the tasks without becoming a flow parameter
    # The person at the keyboard chose these files: the flow, running in this process, may read their folders.
    own_folders = [str(path.resolve().parent) for path in map(local_path, args.sources) if path is not None]
    if own_folders:
        os.environ[DATA_DIR_VARIABLE] = os.pathsep.join([*own_folders, os.environ.get(DATA_DIR_VARIABLE, "")])
    state = ingest_events(
        sources=args.sources,
        table=args.table,
        database_secret_block=None,
        chunk_size=args.chunk_size,
        concurrency=args.concurrency,
        replace=args.replace,
        return_state=True,
    )
    if state.is_completed():
        return state.result()
    error = state.result(raise_on_failure=False)
    return [failed(source, error) for source in args.sources]


def _ingest_directly(args: argparse.Namespace, url: str) -> list[FileSummary]:
    try:
        prepare_tables(url, args.table)
    except Exception as error:  # noqa: BLE001 - a bad URL or table name: one line, no traceback
        return [failed(source, f"{shown_url(url)}: {redact(str(error), secrets_of(url))}") for source in args.sources]
    with _Progress() as progress, ThreadPoolExecutor(max(1, args.concurrency)) as pool:

        def load(source: str) -> FileSummary:
            try:
                path = fetch(source, any_local_path=True)  # a person's own machine: their paths are theirs
                track = progress.track(redact(source), path)
                return load_file(url, args.table, path, source, args.chunk_size, track, replace=args.replace)
            except Exception as error:  # noqa: BLE001 - one file's failure is reported, the others go on
                return failed(source, redact(str(error) or type(error).__name__, secrets_of(url)))

        return list(pool.map(load, args.sources))


class _Progress:
    """A progress bar per file on a terminal; nothing when output is piped."""

    def __init__(self) -> None:
        self.bars = None

    def __enter__(self) -> Self:
        if sys.stderr.isatty():
            from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

            columns = (
                "{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )
            self.bars = Progress(*columns, transient=False)
            self.bars.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bars:
            self.bars.stop()

    def track(self, source: str, path: Path):
        if not self.bars:
            return None
        bar = self.bars.add_task(Path(source).name, total=path.stat().st_size)
        return lambda size: self.bars.advance(bar, size)


if __name__ == "__main__":
    sys.exit(main())
