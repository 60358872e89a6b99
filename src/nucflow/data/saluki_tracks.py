"""Saluki's input table from an annotation (GTF / GFF3) and a genome (FASTA or 2bit).

Saluki reads a transcript as six tracks: one-hot A, C, G, T, a coding-frame track (1 at the
first nucleotide of every codon of the ORF) and a 5' splice-site track (1 at the last
nucleotide of every exon but the last). :func:`build_saluki_table` writes them in the nucflow
table format, one transcript per line::

    id<TAB>sequence
    tx1<TAB>A#0#0,C#1#0,G#0#0,T#0#1,...

Each token is the nucleotide atom followed by two specifiers, ``frame#splice``, so the table
is read with ``columnsep: "\\t"``, ``tokensep: ","``, ``specifiersep: "#"``, ``idpos: 1``,
``seqpos: 2``, ``stripheader: true``: 4 one-hot channels + 2 specifier channels.

The table holds the **whole** spliced transcript 5'→3'. Transcripts longer than the model's
``blocksize`` are cut when they are encoded; encode with ``lefttailing: true`` to keep the
last ``blocksize`` nucleotides (the 3' end), as the published Saluki does. The count of such
transcripts is logged and returned.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from nucflow.errors import InputError
from nucflow.io.atomic import atomic_path
from nucflow.io.fasta import read_fasta
from nucflow.io.gtf import Transcript, read_annotation

logger = logging.getLogger(__name__)

BASES = "ACGTN"
"""The nucleotides of a spliced sequence (every other genome letter is read as N)."""

DEFAULT_ATOMS: Mapping[str, str] = MappingProxyType({base: base for base in BASES})
"""Token written for each nucleotide (N gets no one-hot channel when the tokenizer is learned
from N-free data: unknown atoms encode as all-zero rows, as Saluki encodes N)."""

TWOBIT_MAGIC = (b"\x43\x27\x41\x1a", b"\x1a\x41\x27\x43")
"""First four bytes of a .2bit file (little- and big-endian signature 0x1A412743)."""

_FORBIDDEN_IN_ATOMS = frozenset(',#"\t\n\r ')
_COMPLEMENT = bytes.maketrans(b"ACGTN", b"TGCAN")


def _normalising_table() -> bytes:
    """Byte table: A/C/G/T in either case to upper case, every other byte to N."""
    table = bytearray(b"N" * 256)
    for base in b"ACGT":
        table[base] = base
        table[base + 32] = base
    return bytes(table)


@dataclass(frozen=True)
class Genome:
    """Random access to a genome: contig lengths and ``fetch(contig, start, end)`` (0-based)."""

    path: Path
    kind: str
    sizes: Mapping[str, int]
    fetch: Callable[[str, int, int], str]


def genome_kind(path: str | os.PathLike[str]) -> str:
    """``"2bit"`` when the file starts with the .2bit signature, otherwise ``"fasta"``."""
    with open(path, "rb") as handle:
        return "2bit" if handle.read(4) in TWOBIT_MAGIC else "fasta"


@contextmanager
def open_genome(path: str | os.PathLike[str]) -> Iterator[Genome]:
    """Open a FASTA (plain / gzip, any case, IUPAC letters read as N) or .2bit genome.

    The format is chosen from the file's first bytes, not its name.
    """
    source = Path(path)
    if not source.is_file():
        raise InputError(f"{source}: file not found (expected a FASTA or 2bit genome)")
    if genome_kind(source) == "fasta":
        records = read_fasta(source, invalid="replace")
        sequences = dict(zip(records.ids, records.sequences, strict=True))
        yield Genome(
            source,
            "fasta",
            MappingProxyType({name: len(seq) for name, seq in sequences.items()}),
            lambda contig, start, end: sequences[contig][start:end],
        )
        return
    import py2bit

    try:
        handle = py2bit.open(str(source))
    except RuntimeError as error:
        raise InputError(f"{source}: cannot be read as a 2bit genome ({error})") from None
    if handle is None:
        raise InputError(f"{source}: cannot be read as a 2bit genome")
    try:
        yield Genome(
            source,
            "2bit",
            MappingProxyType(dict(handle.chroms())),
            lambda contig, start, end: handle.sequence(contig, start, end),
        )
    finally:
        handle.close()


def _transcript_order(transcript: Transcript) -> list[tuple[int, int]]:
    """Exons in 5'→3' transcript order (descending genomic position on the minus strand)."""
    exons = list(transcript.exons)
    return exons if transcript.strand == "+" else exons[::-1]


def spliced_sequence(transcript: Transcript, fetch: Callable[[str, int, int], str]) -> str:
    """The mature transcript 5'→3' in upper-case ACGTN (reverse complement on the minus strand)."""
    pieces = [fetch(transcript.chromosome, start, end) for start, end in transcript.exons]
    raw = "".join(pieces).encode("ascii", errors="replace").translate(_normalising_table())
    if transcript.strand == "-":
        raw = raw.translate(_COMPLEMENT)[::-1]
    return raw.decode("ascii")


def _to_transcript_coordinates(
    transcript: Transcript, intervals: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Map genomic intervals lying inside single exons to transcript intervals (0-based)."""
    exons = transcript.exons
    lengths = [end - start for start, end in exons]
    if transcript.strand == "+":
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).tolist()
    else:
        offsets = np.concatenate((np.cumsum(lengths[::-1])[::-1][1:], [0])).tolist()
    starts = [start for start, _ in exons]
    mapped = []
    for start, end in intervals:
        index = bisect.bisect_right(starts, start) - 1
        if index < 0 or end > exons[index][1]:
            raise InputError(
                f"transcript {transcript.id!r}: interval {start + 1}-{end} is not inside an exon"
            )
        exon_start, exon_end = exons[index]
        offset = offsets[index]
        if transcript.strand == "+":
            mapped.append((offset + start - exon_start, offset + end - exon_start))
        else:
            mapped.append((offset + exon_end - end, offset + exon_end - start))
    return mapped


def frame_track(transcript: Transcript) -> np.ndarray:
    """Coding-frame track (uint8, transcript length): 1 at the first nucleotide of each codon.

    The coding nucleotides are the CDS (and, when the transcript has a CDS, its stop_codon
    features) in transcript coordinates; codons start at the 5'-most coding nucleotide plus
    the CDS phase and follow every third coding nucleotide. All zero for non-coding transcripts.
    """
    track = np.zeros(transcript.length, dtype=np.uint8)
    if not transcript.is_coding:
        return track
    coding = np.zeros(transcript.length, dtype=bool)
    for start, end in _to_transcript_coordinates(
        transcript, transcript.cds + transcript.stop_codons
    ):
        coding[start:end] = True
    positions = np.flatnonzero(coding)
    track[positions[transcript.cds_phase :: 3]] = 1
    return track


def splice_track(transcript: Transcript) -> np.ndarray:
    """5' splice-site track (uint8): 1 at the last nucleotide of every exon except the last."""
    track = np.zeros(transcript.length, dtype=np.uint8)
    lengths = [end - start for start, end in _transcript_order(transcript)]
    track[np.cumsum(lengths)[:-1] - 1] = 1
    return track


def _checked_atoms(atoms: Mapping[str, str]) -> dict[str, str]:
    """The nucleotide -> token map with defaults filled; tokens must be distinct and plain."""
    unknown = sorted(set(atoms) - set(BASES))
    if unknown:
        raise InputError(f"atoms: unknown nucleotide key(s) {unknown} (expected A, C, G, T, N)")
    merged = {**DEFAULT_ATOMS, **atoms}
    for base, atom in merged.items():
        if not isinstance(atom, str) or not atom or set(atom) & _FORBIDDEN_IN_ATOMS:
            raise InputError(
                f"atoms: token {atom!r} for {base} (expected a non-empty string without "
                "commas, '#', quotes or whitespace)"
            )
    if len(set(merged.values())) != len(merged):
        raise InputError(f"atoms: tokens {merged} are not distinct (expected one per nucleotide)")
    return merged


def _token_table(atoms: Mapping[str, str]) -> np.ndarray:
    """Token strings indexed by ``4 * base + 2 * frame + splice`` (base in ACGTN order)."""
    return np.array(
        [
            f"{atoms[base]}#{frame}#{splice}"
            for base in BASES
            for frame in (0, 1)
            for splice in (0, 1)
        ],
        dtype=object,
    )


def _base_codes() -> np.ndarray:
    """Byte -> index into ACGTN (upper-case sequences only)."""
    codes = np.full(256, BASES.index("N"), dtype=np.uint8)
    for index, base in enumerate(BASES):
        codes[ord(base)] = index
    return codes


def table_sequence(sequence: str, frame: np.ndarray, splice: np.ndarray, tokens: np.ndarray) -> str:
    """The comma-separated ``atom#frame#splice`` field of one transcript."""
    bases = _base_codes()[np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)]
    index = bases.astype(np.intp) * 4 + frame.astype(np.intp) * 2 + splice.astype(np.intp)
    return ",".join(tokens[index].tolist())


def _check_against_genome(source: Path, transcripts: Sequence[Transcript], genome: Genome) -> None:
    """Every transcript's contig must be in the genome and its exons within the contig."""
    for transcript in transcripts:
        size = genome.sizes.get(transcript.chromosome)
        if size is None:
            names = list(genome.sizes)
            hint = ""
            for other in (f"chr{transcript.chromosome}", transcript.chromosome.removeprefix("chr")):
                if other != transcript.chromosome and other in genome.sizes:
                    hint = (
                        f"; the genome has {other!r}: annotation and genome name contigs "
                        "differently"
                    )
                    break
            listed = ", ".join(names[:5]) + (f", … ({len(names)} in all)" if len(names) > 5 else "")
            raise InputError(
                f"{source} line {transcript.line}: transcript {transcript.id!r} is on contig "
                f"{transcript.chromosome!r}, which genome {genome.path} does not contain "
                f"(expected one of: {listed}{hint})"
            )
        for (start, end), line in zip(transcript.exons, transcript.exon_lines, strict=True):
            if end > size:
                raise InputError(
                    f"{source} line {line}: exon {start + 1}-{end} of transcript "
                    f"{transcript.id!r} ends beyond contig {transcript.chromosome!r} "
                    f"({size} nt in genome {genome.path}; expected end <= {size})"
                )


def build_saluki_table(
    annotation_path: str | os.PathLike[str],
    genome_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    transcripts: Sequence[str] | None = None,
    blocksize: int = 12288,
    atoms: Mapping[str, str] = DEFAULT_ATOMS,
) -> dict[str, Any]:
    """Write Saluki's six-track input table for the transcripts of an annotation (atomically).

    Parameters
    ----------
    annotation_path
        GTF or GFF3 (plain or gzip); see :func:`nucflow.io.gtf.read_annotation`.
    genome_path
        FASTA (plain or gzip, any case; non-ACGT letters become N) or .2bit, told apart by the
        file's first bytes.
    out_path
        Output table (tab-separated, header ``id<TAB>sequence``), one row per transcript in
        order of first appearance in the annotation.
    transcripts
        Only these transcript ids (all must be in the annotation); ``None`` = every transcript.
    blocksize
        The model's input length: only used to count (and log) transcripts that encoding will
        cut; the table keeps whole transcripts (encode with ``lefttailing: true`` for 3' ends).
    atoms
        Token written for each nucleotide (keys A, C, G, T, N; missing keys keep the default).

    Returns
    -------
    dict
        ``out``, ``genome_format``, ``transcripts``, ``coding``, ``noncoding``,
        ``nucleotides``, ``n_bases`` (N in the sequences), ``max_length``, ``blocksize`` and
        ``longer_than_blocksize``.

    Raises
    ------
    InputError
        Bad annotation lines (see ``read_annotation``), requested ids that are missing, a
        transcript on a contig the genome lacks, an exon beyond its contig's end, a CDS outside
        the exons, a bad genome file, ``blocksize < 1`` or bad ``atoms``. Nothing is written.
    """
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 1:
        raise InputError(f"blocksize {blocksize!r} (expected a positive integer)")
    tokens = _token_table(_checked_atoms(atoms))
    annotation = Path(annotation_path)
    records = read_annotation(annotation, transcripts)
    summary: dict[str, Any] = {
        "out": str(out_path),
        "transcripts": len(records),
        "coding": sum(record.is_coding for record in records),
        "noncoding": sum(not record.is_coding for record in records),
        "nucleotides": 0,
        "n_bases": 0,
        "max_length": 0,
        "blocksize": blocksize,
        "longer_than_blocksize": 0,
    }
    with open_genome(genome_path) as genome:
        summary["genome_format"] = genome.kind
        _check_against_genome(annotation, records, genome)
        with atomic_path(out_path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as out:
            out.write("id\tsequence\n")
            for record in records:
                sequence = spliced_sequence(record, genome.fetch)
                field = table_sequence(sequence, frame_track(record), splice_track(record), tokens)
                out.write(f"{record.id}\t{field}\n")
                summary["nucleotides"] += len(sequence)
                summary["n_bases"] += sequence.count("N")
                summary["max_length"] = max(summary["max_length"], len(sequence))
                summary["longer_than_blocksize"] += len(sequence) > blocksize
    logger.info(
        "wrote %d transcripts (%d coding, %d non-coding, %d nt, %d N) from %s and %s to %s",
        summary["transcripts"],
        summary["coding"],
        summary["noncoding"],
        summary["nucleotides"],
        summary["n_bases"],
        annotation,
        genome_path,
        out_path,
    )
    if summary["longer_than_blocksize"]:
        logger.info(
            "%d transcripts are longer than blocksize %d nt (longest %d nt): the table keeps "
            "them whole; encode with lefttailing: true to keep their 3' ends as Saluki does",
            summary["longer_than_blocksize"],
            blocksize,
            summary["max_length"],
        )
    return summary
