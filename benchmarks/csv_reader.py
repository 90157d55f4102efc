"""CPU seconds of pgingest's raw CSV reader alone (cutting, checking and, where COPY would
misread a chunk, repairing it), over a file: no database, no loader.

    python benchmarks/csv_reader.py FILE [--rounds 5]
    PYTHONPATH=/tmp/before/src python benchmarks/csv_reader.py FILE   # another checkout's

Interleave runs of two checkouts for an A/B: the machine's noise is larger than the gaps.
"""

from __future__ import annotations

import argparse
import statistics
import time

from pgingest.sources import CsvOptions, detect, open_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-bytes", type=int, default=4 << 20)
    args = parser.parse_args()
    info = detect(args.file, csv=CsvOptions())
    times = []
    size = rewritten = chunks = 0
    for _ in range(args.rounds):
        source = open_source(info, CsvOptions())
        began = time.process_time()
        size = rewritten = chunks = 0
        for chunk in source.chunks(batch_rows=50_000, batch_bytes=args.batch_bytes, raw=True):
            size += len(chunk.data)
            chunks += 1
            rewritten += getattr(chunk, "lines", None) is not None
        times.append(time.process_time() - began)
        source.close()
    print(
        f"{args.file}: {size:,} bytes in {chunks} chunks ({rewritten} written again);"
        f" CPU s min {min(times):.3f} median {statistics.median(times):.3f}"
    )


if __name__ == "__main__":
    main()
