"""GTF / GFF3 annotation reading: the exons and coding intervals of each transcript.

Only ``exon``, ``CDS`` and ``stop_codon`` features are used (case-insensitive); every other
feature line is checked for its columns, coordinates and strand and then ignored. A feature
belongs to the transcript named by its GTF ``transcript_id`` attribute, or to every id in its
GFF3 ``Parent=`` attribute (the ``ID=`` of the mRNA / transcript line; the parent line itself
is not needed). Coordinates are returned 0-based half-open; files may be gzip-compressed.
"""

from __future__ import annotations

import bisect
import gzip
import io
import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from nucflow.errors import InputError

AnnotationFormat = Literal["auto", "gtf", "gff3"]

_STRANDS = frozenset({"+", "-", ".", "?"})
_FEATURES = {"exon": "exon", "cds": "CDS", "stop_codon": "stop_codon"}
_GTF_ATTRIBUTE = re.compile(r'\s*[A-Za-z_][\w.]*\s+"')
_GTF_TRANSCRIPT_ID = re.compile(r'(?:^|;)\s*transcript_id\s+(?:"([^"]*)"|([^;\s]+))')
_MAX_LISTED = 5


@dataclass(frozen=True)
class Transcript:
    """One transcript of an annotation; intervals are genomic, 0-based half-open, sorted.

    ``cds`` holds the CDS features and ``stop_codons`` the stop_codon features (GTF files list
    the stop codon separately; GFF3 CDS features usually include it). ``cds_phase`` is the
    phase column of the CDS feature at the transcript's 5' end (0 without CDS or for ``.``).
    ``line`` is the first annotation line of the transcript's exons, ``exon_lines`` the line
    of each exon.
    """

    id: str
    chromosome: str
    strand: str
    exons: tuple[tuple[int, int], ...]
    exon_lines: tuple[int, ...]
    cds: tuple[tuple[int, int], ...]
    stop_codons: tuple[tuple[int, int], ...]
    cds_phase: int
    line: int

    @property
    def is_coding(self) -> bool:
        """Whether the transcript has CDS features."""
        return bool(self.cds)

    @property
    def length(self) -> int:
        """Spliced length (sum of the exon lengths)."""
        return sum(end - start for start, end in self.exons)


@dataclass
class _Builder:
    """Features of one transcript collected while reading (local to one read)."""

    chromosome: str
    strand: str
    line: int
    exons: list[tuple[int, int, int]] = field(default_factory=list)
    cds: list[tuple[int, int, int, int]] = field(default_factory=list)
    stops: list[tuple[int, int, int]] = field(default_factory=list)


def _open_text(path: Path) -> io.TextIOBase:
    """Open a plain or gzip-compressed text file with universal newlines."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline=None)
    return open(path, encoding="utf-8", newline=None)  # noqa: SIM115 - caller's with-block


def _coordinate(source: Path, number: int, name: str, text: str) -> int:
    """A 1-based coordinate column as an int (ASCII digits only)."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise InputError(
            f"{source} line {number}: {name} {text!r} is not a positive integer "
            "(expected 1-based integer coordinates in columns 4 and 5)"
        )
    return int(text)


def _sniff(attributes: str) -> Literal["gtf", "gff3"]:
    """GTF when the attributes look like ``key "value";``, otherwise GFF3 (``key=value``)."""
    if _GTF_ATTRIBUTE.match(attributes) or "=" not in attributes:
        return "gtf"
    return "gff3"


def _transcript_ids(attributes: str, kind: Literal["gtf", "gff3"]) -> list[str]:
    """The transcript ids a feature belongs to (empty when its attributes name none)."""
    if kind == "gtf":
        match = _GTF_TRANSCRIPT_ID.search(attributes)
        if match is None:
            return []
        value = match.group(1) if match.group(1) is not None else match.group(2)
        return [value] if value else []
    for item in attributes.split(";"):
        key, separator, value = item.strip().partition("=")
        if key == "Parent" and separator:
            return [unquote(part) for part in value.split(",") if part]
    return []


def _phase(source: Path, number: int, text: str) -> int:
    """The phase column of a CDS line (``.`` reads as 0)."""
    if text in ("0", "1", "2"):
        return int(text)
    if text == ".":
        return 0
    raise InputError(f"{source} line {number}: CDS phase {text!r} (expected 0, 1, 2 or .)")


def _spans(intervals: Iterable[tuple[int, int]]) -> str:
    """A short 1-based listing of intervals for error messages."""
    items = [f"{start + 1}-{end}" for start, end in intervals]
    more = f", … ({len(items)} in all)" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


def _finish(source: Path, transcript_id: str, builder: _Builder) -> Transcript:
    """Sort and check one transcript's features: exons must not overlap, CDS lie inside exons."""
    if not builder.exons:
        raise InputError(
            f"{source} line {builder.line}: transcript {transcript_id!r} has CDS/stop_codon "
            "lines but no exon lines (expected exon features for every transcript)"
        )
    exons = sorted(builder.exons)
    for (start, end, line), (next_start, next_end, next_line) in itertools.pairwise(exons):
        if next_start < end:
            raise InputError(
                f"{source} line {next_line}: exon {next_start + 1}-{next_end} of transcript "
                f"{transcript_id!r} overlaps exon {start + 1}-{end} (line {line}) "
                "(expected non-overlapping exons)"
            )
    starts = [start for start, _, _ in exons]
    coding = [(start, end, line, "CDS") for start, end, _, line in builder.cds]
    coding += [(start, end, line, "stop_codon") for start, end, line in builder.stops]
    for start, end, line, name in coding:
        index = bisect.bisect_right(starts, start) - 1
        if index < 0 or end > exons[index][1]:
            raise InputError(
                f"{source} line {line}: {name} {start + 1}-{end} of transcript "
                f"{transcript_id!r} is not inside one of its exons "
                f"({_spans((s, e) for s, e, _ in exons)}) (expected coding intervals within exons)"
            )
    cds = sorted(builder.cds)
    phase = 0
    if cds:
        five_prime = cds[0] if builder.strand == "+" else max(cds, key=lambda item: item[1])
        phase = five_prime[2]
    return Transcript(
        id=transcript_id,
        chromosome=builder.chromosome,
        strand=builder.strand,
        exons=tuple((start, end) for start, end, _ in exons),
        exon_lines=tuple(line for _, _, line in exons),
        cds=tuple((start, end) for start, end, _, _ in cds),
        stop_codons=tuple(sorted((start, end) for start, end, _ in builder.stops)),
        cds_phase=phase,
        line=builder.line,
    )


def _missing_message(source: Path, missing: list[str], seen: set[str]) -> str:
    """Error text for requested ids without exon lines, with a hint about version suffixes."""
    listed = ", ".join(repr(name) for name in missing[:_MAX_LISTED])
    more = f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
    hints = []
    for name in missing[:_MAX_LISTED]:
        base = name.split(".")[0]
        similar = sorted(other for other in seen if other.split(".")[0] == base)
        if similar:
            hints.append(f"{name!r} -> {similar[0]!r}")
    hint = f"; similar ids in the file: {', '.join(hints)}" if hints else ""
    return (
        f"{source}: {len(missing)} requested transcript id(s) not found: {listed}{more} "
        f"(expected ids with exon lines in the annotation{hint})"
    )


def read_annotation(
    path: str | os.PathLike[str],
    transcripts: Iterable[str] | None = None,
    format: AnnotationFormat = "auto",
) -> list[Transcript]:
    """Read the transcripts of a GTF or GFF3 file (plain or gzip), in order of first appearance.

    Parameters
    ----------
    path
        The annotation file.
    transcripts
        Keep only these transcript ids; every one must be present (GTF ``transcript_id``, GFF3
        ``Parent``/``ID`` value).
    format
        ``auto`` decides from a ``##gff-version`` line, else from the first feature's
        attributes (``key "value";`` is GTF, ``key=value`` is GFF3).

    Raises
    ------
    InputError
        One line naming the file and line: not 9 tab-separated columns, non-integer
        coordinates, start > end, an unknown strand, an exon / CDS without a transcript id or
        without strand + / -, a transcript on two contigs or strands, overlapping exons, a CDS
        outside the exons, no exon lines at all, or requested ids that are not there.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: file not found (expected a GTF or GFF3 annotation)")
    if format not in ("auto", "gtf", "gff3"):
        raise InputError(f"{source}: annotation format {format!r} (expected auto, gtf or gff3)")
    if isinstance(transcripts, str):
        transcripts = [transcripts]
    wanted = None if transcripts is None else set(transcripts)
    if wanted is not None and not wanted:
        raise InputError(f"{source}: empty list of transcript ids (expected ids, or none for all)")
    kind: Literal["gtf", "gff3"] | None = None if format == "auto" else format
    builders: dict[str, _Builder] = {}
    seen: set[str] = set()
    number = 0
    with _open_text(source) as handle:
        try:
            for number, raw in enumerate(handle, start=1):
                line = raw.rstrip("\n")
                if not line.strip():
                    continue
                if line.startswith("#"):
                    if line.startswith("##FASTA"):
                        break
                    if kind is None and line.startswith("##gff-version"):
                        version = line.split()[1:2]
                        kind = "gff3" if version and version[0].startswith("3") else "gtf"
                    continue
                fields = line.split("\t")
                if len(fields) != 9:
                    raise InputError(
                        f"{source} line {number}: {len(fields)} tab-separated column(s) "
                        "(expected 9: seqid, source, type, start, end, score, strand, phase, "
                        "attributes)"
                    )
                start = _coordinate(source, number, "start", fields[3])
                end = _coordinate(source, number, "end", fields[4])
                if start > end:
                    raise InputError(
                        f"{source} line {number}: start {start} > end {end} "
                        "(expected start <= end, 1-based inclusive coordinates)"
                    )
                strand = fields[6]
                if strand not in _STRANDS:
                    raise InputError(
                        f"{source} line {number}: unknown strand {strand!r} (expected +, -, . or ?)"
                    )
                feature = _FEATURES.get(fields[2].lower())
                if feature is None:
                    continue
                if kind is None:
                    kind = _sniff(fields[8])
                ids = _transcript_ids(fields[8], kind)
                if not ids:
                    expected = (
                        "a transcript_id attribute"
                        if kind == "gtf"
                        else "a Parent= attribute naming its transcript"
                    )
                    raise InputError(
                        f"{source} line {number}: {fields[2]} without a transcript id "
                        f"(expected {expected})"
                    )
                if strand not in ("+", "-"):
                    raise InputError(
                        f"{source} line {number}: {fields[2]} of transcript {ids[0]!r} has "
                        f"strand {strand!r} (expected + or - for transcript features)"
                    )
                phase = _phase(source, number, fields[7]) if feature == "CDS" else 0
                for transcript_id in ids:
                    if wanted is not None and transcript_id not in wanted:
                        if feature == "exon":
                            seen.add(transcript_id)
                        continue
                    builder = builders.get(transcript_id)
                    if builder is None:
                        builder = _Builder(fields[0], strand, number)
                        builders[transcript_id] = builder
                    elif (fields[0], strand) != (builder.chromosome, builder.strand):
                        raise InputError(
                            f"{source} line {number}: transcript {transcript_id!r} on "
                            f"{fields[0]} {strand} but on {builder.chromosome} "
                            f"{builder.strand} at line {builder.line} (expected one contig "
                            "and strand per transcript)"
                        )
                    if feature == "exon":
                        if not builder.exons:
                            builder.line = number
                        builder.exons.append((start - 1, end, number))
                    elif feature == "CDS":
                        builder.cds.append((start - 1, end, phase, number))
                    else:
                        builder.stops.append((start - 1, end, number))
        except UnicodeDecodeError as error:
            raise InputError(
                f"{source} line {number + 1}: not UTF-8 text ({error.reason}; expected a "
                "GTF or GFF3 text file)"
            ) from None
        except (OSError, EOFError) as error:
            raise InputError(f"{source}: cannot be read ({error})") from None
    if wanted is not None:
        missing = sorted(name for name in wanted if name not in builders)
        if missing:
            raise InputError(_missing_message(source, missing, seen))
    if not builders:
        raise InputError(
            f"{source}: no exon lines found (expected GTF or GFF3 exon features with a "
            "transcript_id or Parent attribute)"
        )
    return [_finish(source, name, builder) for name, builder in builders.items()]
