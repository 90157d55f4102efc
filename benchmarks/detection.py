"""Encoding and dialect detection: pgingest's own against charset-normalizer and clevercsv.

    python benchmarks/detection.py [--texts DIR]

Builds a corpus of CSV files (generated, from texts in several languages, and the edge cases
of the issues: a UTF-8 file with a few stray bytes, a lone surrogate, an ASCII file whose
cp1252 characters come late, a cp1252 file holding an accidental UTF-8 pair; dialects with
each delimiter, both quotes, backslash escaping, no header, stray quotes) and prints, per
detector, how many files it gets right and how fast. ``--texts`` is a folder of UTF-8 text
files in several languages (e.g. charset-normalizer's ``data/``): their words make rows in
the encodings of their language. The detectors that are not installed are left out.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pgingest.errors import SourceError
from pgingest.sources.detect import SAMPLE_BYTES, sniff_dialect
from pgingest.sources.encoding import decide, evidence

WORDS = {
    "french": "élève château garçon déjà très où noël forêt hôtel cœur",
    "german": "straße müller größe über äpfel schön fünf weiß grüße öl",
    "spanish": "niño año señor acción corazón pingüino mañana árbol café",
    "polish": "zażółć gęślą jaźń źdźbło łódź świat mąka ćma żółw",
    "russian": "привет мир съешь же ещё этих мягких французских булок",
}
ENCODINGS = {
    "french": ("cp1252", "latin-1"),
    "german": ("cp1252", "latin-1"),
    "spanish": ("cp1252", "latin-1"),
    "polish": ("cp1250", "iso8859-2"),
    "russian": ("cp1251", "koi8-r"),
}
SUPPORTED = {"utf-8", "cp1252", "latin-1", "cp1250", "cp1251", "iso8859-2", "iso8859-15", "koi8-r"}


def _encodes(word: str, encoding: str) -> bool:
    try:
        word.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def rows_of(words: list[str], count: int, rng: random.Random) -> list[list[str]]:
    return [[str(i), " ".join(rng.choices(words, k=6)), rng.choice(words)] for i in range(count)]


def to_csv(rows: list[list[str]], delimiter: str = ",", quote: str = '"', escape=None) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(
        out,
        delimiter=delimiter,
        quotechar=quote,
        escapechar=escape,
        doublequote=escape is None,
        lineterminator="\n",
    )
    writer.writerow(["id", "text", "word"])
    writer.writerows(rows)
    return out.getvalue()


def encoding_corpus(texts: Path | None, rng: random.Random) -> list[tuple[str, bytes, str]]:
    """(name, bytes, the text they hold) for each file."""
    words = {lang: text.split() for lang, text in WORDS.items()}
    if texts is not None:
        for path in sorted(texts.glob("*.txt")):
            try:
                text = path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue
            lang = path.stem.removeprefix("sample-").split("-")[0].split(".")[0]
            if lang in ENCODINGS:
                words[lang] = words.get(lang, []) + [
                    w for w in text.split() if all(_encodes(w, e) for e in ENCODINGS[lang])
                ]
    corpus = []
    for lang, pool in words.items():
        for rows in (200, 20_000):
            text = to_csv(rows_of(pool, rows, rng))
            corpus.append((f"{lang}-{rows}-utf-8", text.encode("utf-8"), text))
            for encoding in ENCODINGS[lang]:
                try:
                    corpus.append((f"{lang}-{rows}-{encoding}", text.encode(encoding), text))
                except UnicodeEncodeError:
                    continue
    french = to_csv(rows_of(words["french"], 20_000, rng))
    lines = french.split("\n")
    for at, bad in ((500, b"\xe9"), (500, b"\xed\xa0\x80"), (15_000, b"\xe9")):
        raw = [line.encode() for line in lines]
        raw[at] = raw[at] + b" " + bad
        text = "\n".join(lines[:at] + lines[at + 1 :])  # the row with the stray bytes: a bad row
        corpus.append((f"utf-8-stray-{bad.hex()}-line{at}", b"\n".join(raw), text))
    ascii_rows = to_csv([[str(i), "plain text", "word"] for i in range(30_000)])
    late = ascii_rows + "30000,café crème,été\n"
    corpus.append(("ascii-then-cp1252", late.encode("cp1252"), late))
    german = to_csv(rows_of(words["german"], 300, rng)) + "300,Straße“,x\n"
    corpus.append(("cp1252-with-utf8-pair", german.encode("cp1252"), german))
    return corpus


def pgingest_main(data: bytes) -> str:
    """main's rule: the first 256 KiB decode as UTF-8, else cp1252, else latin-1."""
    sample = data[:SAMPLE_BYTES]
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(sample) - 3:
            return "utf-8"
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def pgingest_evidence(data: bytes) -> str:
    """This branch: the whole file's evidence (see pgingest.sources.encoding); ``refused``
    when it refuses to guess."""
    try:
        return decide(evidence(data)) or "utf-8"
    except SourceError:
        return "refused"


def detect_charset_normalizer(data: bytes) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    return "unknown" if best is None else best.encoding


def correct(data: bytes, encoding: str, text: str) -> bool:
    """Right when the rows it decodes are the file's text (a stray-byte row left out)."""
    if encoding in ("ascii", "unknown"):
        encoding = "utf-8" if encoding == "ascii" else encoding
    try:
        decoded = data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        if encoding != "utf-8":
            return False
        good = [line for line in data.split(b"\n") if _utf8(line)]
        return b"\n".join(good).decode() == text
    return decoded == text


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def dialect_corpus(rng: random.Random, spectrum: Path | None) -> list[tuple[str, bytes, str, str]]:
    """(name, bytes, delimiter, quote)."""
    pool = [*WORDS["french"].split(), "a,b", 'say "hi"', "x;y", "t\tu", "p|q", "it's", '5" pipe']
    corpus = []
    for delimiter in (",", ";", "\t", "|"):
        for quote in ('"', "'"):
            for escape in (None, "\\"):
                rows = rows_of(pool, 300, rng)
                data = to_csv(rows, delimiter, quote, escape).encode()
                corpus.append((f"gen-{delimiter!r}-{quote}-{escape}", data, delimiter, quote))
    messy = 'id,item,n\n1,5" pipe,3\n2,bolt,4\n3,7" tube,5\n4,"a, b",6\n'
    corpus.append(("inch-marks", messy.encode(), ",", '"'))
    geo = 'id,where\n1,37°36\'37.8"N 121°2\'17.9"W\n2,x\n3,"y, z"\n'
    corpus.append(("coordinates", geo.encode(), ",", '"'))
    semi = "name;amount\n" + "".join(f"item {i};{i},50\n" for i in range(200))
    corpus.append(("decimal-commas", semi.encode(), ";", '"'))
    if spectrum is not None:
        for path in sorted(spectrum.glob("*.csv")):
            data = path.read_bytes()
            if data.strip():
                corpus.append((f"spectrum-{path.stem}", data, ",", '"'))
    return corpus


def sniff_pgingest(data: bytes) -> tuple[str, str]:
    dialect = sniff_dialect(data[:SAMPLE_BYTES], at_eof=len(data) <= SAMPLE_BYTES, path="x")
    return dialect.delimiter, dialect.quotechar


def sniff_clevercsv(data: bytes) -> tuple[str, str]:
    import clevercsv

    dialect = clevercsv.Detector().detect(data[:SAMPLE_BYTES].decode("utf-8", "replace"))
    if dialect is None:
        return "?", "?"
    return dialect.delimiter, dialect.quotechar or '"'


def measure(name: str, run: Callable[[], bool]) -> tuple[bool, float]:
    began = time.perf_counter()
    ok = run()
    return ok, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=Path, help="UTF-8 texts in several languages")
    parser.add_argument("--spectrum", type=Path, help="a folder of edge-case CSV files")
    args = parser.parse_args()
    rng = random.Random(13)
    detectors: dict[str, Callable[[bytes], str]] = {
        "pgingest main (sample)": pgingest_main,
        "pgingest evidence (file)": pgingest_evidence,
    }
    try:
        import charset_normalizer  # noqa: F401

        detectors["charset-normalizer"] = detect_charset_normalizer
    except ImportError:
        pass
    corpus = encoding_corpus(args.texts, rng)
    print(f"encodings: {len(corpus)} files")
    for label, detector in detectors.items():
        right, seconds, wrong = 0, 0.0, []
        for name, data, text in corpus:  # (the whole file: what the rule reads to decide)
            began = time.perf_counter()
            encoding = detector(data)
            seconds += time.perf_counter() - began
            if correct(data, encoding, text):
                right += 1
            else:
                wrong.append(f"{name}->{encoding}")
        megabytes = sum(len(d) for _n, d, _t in corpus) / 1e6
        print(f"  {label:26} {right}/{len(corpus)} right  {megabytes / seconds:8.1f} MB/s")
        print(f"    wrong: {', '.join(wrong) or '-'}")
    sniffers: dict[str, Callable[[bytes], tuple[str, str]]] = {"pgingest": sniff_pgingest}
    try:
        import clevercsv  # noqa: F401

        sniffers["clevercsv"] = sniff_clevercsv
    except ImportError:
        pass
    dialects = dialect_corpus(rng, args.spectrum)
    print(f"dialects: {len(dialects)} files")
    for label, sniff in sniffers.items():
        right, seconds, wrong = 0, 0.0, []
        for name, data, delimiter, quote in dialects:
            began = time.perf_counter()
            try:
                found = sniff(data)
            except Exception as exc:
                found = ("error", type(exc).__name__)
            seconds += time.perf_counter() - began
            if found == (delimiter, quote):
                right += 1
            else:
                wrong.append(f"{name}->{found}")
        print(
            f"  {label:26} {right}/{len(dialects)} right  {seconds / len(dialects) * 1000:8.2f}"
            " ms/file"
        )
        print(f"    wrong: {', '.join(wrong) or '-'}")


if __name__ == "__main__":
    main()
