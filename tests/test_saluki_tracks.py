"""Saluki tables from GTF / GFF3 + FASTA / 2bit: sequences, frame and splice tracks, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from nucflow.data.saluki_tracks import build_saluki_table
from nucflow.errors import InputError
from nucflow.io.gtf import read_annotation
from nucflow.io.twobit import write_2bit

# chr1 positions (0-based): 0-9 ACGTTGCAAC, 10-19 GGATCCTTAG, 20-29 CATGCATGCA,
# 30-39 TTAACCGGTT, 40-49 AGCTAGCTAG, 50-59 CCCAAAGGGT
CHR1 = "ACGTTGCAACGGATCCTTAGCATGCATGCATTAACCGGTTAGCTAGCTAGCCCAAAGGGT"
# chr2: 0-9 TTTTGGGGCC, 10-19 CCAAAATGCA, 20-29 GTCAGTCAGT, 30-39 ACACGTGTAC
CHR2 = "TTTTGGGGCCCCAAAATGCAGTCAGTCAGTACACGTGTAC"

# Expected tracks, worked out by hand from the coordinates in GTF below.
# txA (+, chr1): exons 3-10, 16-25, 31-40 -> GTTGCAAC | CTTAGCATGC | TTAACCGGTT.
#   CDS 7-10, 16-25, 31-34 + stop 35-37 = transcript 4..24: codons start at 4, 7, ..., 22.
#   Exon ends in the transcript: 7 and 17.
# txB (-, chr2): exons 21-35 then 5-14 in transcript order:
#   revcomp(GTCAGTCAGTACACG) = CGTGTACTGACTGAC, revcomp(GGGGCCCCAA) = TTGGGGCCCC.
#   CDS 21-29 -> transcript 6..14, CDS 9-14 -> 15..20, stop 6-8 -> 21..23; codons 6, 9, ..., 21.
#   Exon end: 14.
# txC (-, chr1, non-coding): exons 53-58 then 45-50: revcomp(CAAAGG) = CCTTTG,
#   revcomp(AGCTAG) = CTAGCT; exon end 5; no frame marks.
EXPECTED = {
    "txA": ("GTTGCAACCTTAGCATGCTTAACCGGTT", [4, 7, 10, 13, 16, 19, 22], [7, 17]),
    "txB": ("CGTGTACTGACTGACTTGGGGCCCC", [6, 9, 12, 15, 18, 21], [14]),
    "txC": ("CCTTTGCTAGCT", [], [5]),
}


def _line(chrom: str, feature: str, start: int, end: int, strand: str, phase: str, attrs: str):
    return "\t".join([chrom, "test", feature, str(start), str(end), ".", strand, phase, attrs])


def _gtf_lines() -> list[str]:
    def a(tx: str, gene: str) -> str:
        return f'gene_id "{gene}"; transcript_id "{tx}"; gene_name "x";'

    return [
        "#!genome-build test",
        _line("chr1", "gene", 3, 40, "+", ".", 'gene_id "gA";'),
        _line("chr1", "transcript", 3, 40, "+", ".", a("txA", "gA")),
        _line("chr1", "exon", 3, 10, "+", ".", a("txA", "gA")),
        _line("chr1", "CDS", 7, 10, "+", "0", a("txA", "gA")),
        _line("chr1", "start_codon", 7, 9, "+", "0", a("txA", "gA")),
        _line("chr1", "exon", 16, 25, "+", ".", a("txA", "gA")),
        _line("chr1", "CDS", 16, 25, "+", "2", a("txA", "gA")),
        _line("chr1", "exon", 31, 40, "+", ".", a("txA", "gA")),
        _line("chr1", "CDS", 31, 34, "+", "1", a("txA", "gA")),
        _line("chr1", "stop_codon", 35, 37, "+", "0", a("txA", "gA")),
        _line("chr2", "transcript", 5, 35, "-", ".", a("txB", "gB")),
        _line("chr2", "exon", 21, 35, "-", ".", a("txB", "gB")),
        _line("chr2", "CDS", 21, 29, "-", "0", a("txB", "gB")),
        _line("chr2", "exon", 5, 14, "-", ".", a("txB", "gB")),
        _line("chr2", "CDS", 9, 14, "-", "0", a("txB", "gB")),
        _line("chr2", "stop_codon", 6, 8, "-", "0", a("txB", "gB")),
        _line("chr1", "exon", 53, 58, "-", ".", a("txC", "gC")),
        _line("chr1", "exon", 45, 50, "-", ".", a("txC", "gC")),
    ]


def _gff3_lines() -> list[str]:
    # GFF3 style: CDS includes the stop codon, exons point to their mRNA with Parent=.
    return [
        "##gff-version 3",
        _line("chr1", "gene", 3, 40, "+", ".", "ID=gA;Name=A%3B1"),
        _line("chr1", "mRNA", 3, 40, "+", ".", "ID=txA;Parent=gA"),
        _line("chr1", "exon", 3, 10, "+", ".", "ID=eA1;Parent=txA"),
        _line("chr1", "exon", 16, 25, "+", ".", "Parent=txA"),
        _line("chr1", "exon", 31, 40, "+", ".", "Parent=txA"),
        _line("chr1", "CDS", 7, 10, "+", "0", "ID=cdsA;Parent=txA"),
        _line("chr1", "CDS", 16, 25, "+", "2", "ID=cdsA;Parent=txA"),
        _line("chr1", "CDS", 31, 37, "+", "1", "ID=cdsA;Parent=txA"),
        _line("chr2", "gene", 5, 35, "-", ".", "ID=gB"),
        _line("chr2", "mRNA", 5, 35, "-", ".", "ID=txB;Parent=gB"),
        _line("chr2", "exon", 21, 35, "-", ".", "Parent=txB"),
        _line("chr2", "exon", 5, 14, "-", ".", "Parent=txB"),
        _line("chr2", "CDS", 21, 29, "-", "0", "ID=cdsB;Parent=txB"),
        _line("chr2", "CDS", 6, 14, "-", "0", "ID=cdsB;Parent=txB"),
        _line("chr1", "lnc_RNA", 45, 58, "-", ".", "ID=txC"),
        _line("chr1", "exon", 45, 50, "-", ".", "Parent=txC"),
        _line("chr1", "exon", 53, 58, "-", ".", "Parent=txC"),
        "##FASTA",
        ">not a feature line",
    ]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def genome(tmp_path: Path) -> Path:
    """Two-contig FASTA with a lower-case stretch (soft-masked letters are allowed)."""
    chr1 = CHR1[:20] + CHR1[20:30].lower() + CHR1[30:]
    path = tmp_path / "genome.fa"
    path.write_text(f">chr1 first contig\n{chr1[:33]}\n{chr1[33:]}\n>chr2\n{CHR2}\n")
    return path


@pytest.fixture
def gtf(tmp_path: Path) -> Path:
    return _write(tmp_path / "annotation.gtf", _gtf_lines())


def _read_table(path: Path) -> dict[str, tuple[str, list[int], list[int]]]:
    """id -> (sequence, frame positions, splice positions), parsed from the written table."""
    lines = path.read_text().splitlines()
    assert lines[0] == "id\tsequence"
    table = {}
    for line in lines[1:]:
        name, field = line.split("\t")
        tokens = [token.split("#") for token in field.split(",")]
        assert all(len(token) == 3 for token in tokens)
        sequence = "".join(atom for atom, _, _ in tokens)
        frame = [i for i, (_, f, _) in enumerate(tokens) if f == "1"]
        splice = [i for i, (_, _, s) in enumerate(tokens) if s == "1"]
        assert {f for _, f, _ in tokens} <= {"0", "1"} and {s for _, _, s in tokens} <= {"0", "1"}
        table[name] = (sequence, frame, splice)
    return table


def _revcomp(sequence: str) -> str:
    return sequence[::-1].translate(str.maketrans("ACGT", "TGCA"))


def test_expected_tracks_match_the_genome_slices():
    # the hand-written expectations agree with plain slicing of the contigs
    assert EXPECTED["txA"][0] == CHR1[2:10] + CHR1[15:25] + CHR1[30:40]
    assert EXPECTED["txB"][0] == _revcomp(CHR2[20:35]) + _revcomp(CHR2[4:14])
    assert EXPECTED["txC"][0] == _revcomp(CHR1[52:58]) + _revcomp(CHR1[44:50])


def test_gtf_table_sequences_frame_and_splice(tmp_path, genome, gtf):
    out = tmp_path / "out" / "saluki.tsv"
    summary = build_saluki_table(gtf, genome, out)
    table = _read_table(out)
    assert list(table) == ["txA", "txB", "txC"]
    assert table == EXPECTED
    assert out.read_text().splitlines()[1].startswith("txA\tG#0#0,T#0#0,T#0#0,G#0#0,C#1#0,")
    assert summary["transcripts"] == 3
    assert (summary["coding"], summary["noncoding"]) == (2, 1)
    assert summary["genome_format"] == "fasta"
    assert summary["nucleotides"] == 28 + 25 + 12
    assert summary["max_length"] == 28 and summary["longer_than_blocksize"] == 0
    assert [p.name for p in out.parent.iterdir()] == ["saluki.tsv"]


def test_read_annotation_coordinates(gtf):
    transcripts = {t.id: t for t in read_annotation(gtf)}
    tx_a, tx_b, tx_c = transcripts["txA"], transcripts["txB"], transcripts["txC"]
    assert (tx_a.chromosome, tx_a.strand) == ("chr1", "+")
    assert tx_a.exons == ((2, 10), (15, 25), (30, 40))
    assert tx_a.cds == ((6, 10), (15, 25), (30, 34)) and tx_a.stop_codons == ((34, 37),)
    assert tx_a.cds_phase == 0 and tx_a.line == 4 and tx_a.exon_lines == (4, 7, 9)
    assert tx_b.exons == ((4, 14), (20, 35)) and tx_b.strand == "-"
    assert tx_b.cds == ((8, 14), (20, 29))
    assert not tx_c.is_coding and tx_c.exons == ((44, 50), (52, 58)) and tx_c.length == 12


def test_gff3_gives_the_same_table_as_gtf(tmp_path, genome, gtf):
    gff3 = _write(tmp_path / "annotation.gff3", _gff3_lines())
    build_saluki_table(gtf, genome, tmp_path / "gtf.tsv")
    build_saluki_table(gff3, genome, tmp_path / "gff3.tsv")
    assert (tmp_path / "gff3.tsv").read_text() == (tmp_path / "gtf.tsv").read_text()


def test_gff3_multiple_parents_and_gzip(tmp_path, genome):
    lines = [
        "##gff-version 3",
        _line("chr1", "exon", 3, 10, "+", ".", "Parent=t%2C1,t2"),
        _line("chr1", "exon", 16, 25, "+", ".", "Parent=t2"),
    ]
    path = tmp_path / "multi.gff3.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    transcripts = {t.id: t.exons for t in read_annotation(path)}
    assert transcripts == {"t,1": ((2, 10),), "t2": ((2, 10), (15, 25))}


def test_twobit_genome_gives_the_same_table(tmp_path, genome, gtf):
    twobit = tmp_path / "genome.2bit"
    write_2bit(twobit, {"chr1": CHR1[:20] + CHR1[20:30].lower() + CHR1[30:], "chr2": CHR2})
    build_saluki_table(gtf, genome, tmp_path / "fasta.tsv")
    summary = build_saluki_table(gtf, twobit, tmp_path / "twobit.tsv")
    assert summary["genome_format"] == "2bit"
    assert (tmp_path / "twobit.tsv").read_text() == (tmp_path / "fasta.tsv").read_text()


def test_gzip_annotation_and_genome(tmp_path, genome, gtf):
    gz_gtf = tmp_path / "annotation.gtf.gz"
    gz_genome = tmp_path / "genome.fa.gz"
    gz_gtf.write_bytes(gzip.compress(gtf.read_bytes()))
    gz_genome.write_bytes(gzip.compress(genome.read_bytes()))
    build_saluki_table(gz_gtf, gz_genome, tmp_path / "gz.tsv")
    assert _read_table(tmp_path / "gz.tsv") == EXPECTED


def test_transcript_filter(tmp_path, genome, gtf):
    out = tmp_path / "subset.tsv"
    summary = build_saluki_table(gtf, genome, out, transcripts=["txC", "txB"])
    assert _read_table(out) == {name: EXPECTED[name] for name in ("txB", "txC")}
    assert summary["transcripts"] == 2


def test_cds_phase_shifts_the_first_codon(tmp_path, genome):
    # one exon 1-30 on chr2, + strand: CDS 4-30 with phase 1 -> codons at 4, 7, ... 25 (0-based)
    lines = [
        _line("chr2", "exon", 1, 30, "+", ".", 'transcript_id "p";'),
        _line("chr2", "CDS", 4, 30, "+", "1", 'transcript_id "p";'),
    ]
    out = tmp_path / "phase.tsv"
    build_saluki_table(_write(tmp_path / "phase.gtf", lines), genome, out)
    assert _read_table(out)["p"] == (CHR2[:30], list(range(4, 30, 3)), [])


def test_blocksize_count_atoms_and_invalid_letters(tmp_path, gtf):
    genome = tmp_path / "iupac.fa"
    genome.write_text(f">chr1\n{CHR1[:2]}R{CHR1[3:]}\n>chr2\n{CHR2}\n")
    out = tmp_path / "atoms.tsv"
    summary = build_saluki_table(gtf, genome, out, blocksize=20, atoms={"A": "a", "N": "n"})
    assert summary["longer_than_blocksize"] == 2 and summary["n_bases"] == 1
    row = out.read_text().splitlines()[1]
    assert row.startswith("txA\tn#0#0,T#0#0,T#0#0,G#0#0,C#1#0,a#0#0,")


@pytest.mark.parametrize(
    ("atoms", "message"),
    [
        ({"U": "u"}, "unknown nucleotide"),
        ({"A": "a,b"}, "without commas"),
        ({"A": ""}, "non-empty"),
        ({"A": "C"}, "not distinct"),
    ],
)
def test_bad_atoms(tmp_path, genome, gtf, atoms, message):
    with pytest.raises(InputError, match=message):
        build_saluki_table(gtf, genome, tmp_path / "x.tsv", atoms=atoms)
    assert not (tmp_path / "x.tsv").exists()


def _replace(lines: list[str], index: int, text: str) -> list[str]:
    return lines[:index] + [text] + lines[index + 1 :]


TXA = 'transcript_id "txA";'
GTF_ERRORS = [
    # (0-based index of the replaced line, i.e. line number - 1; new line; expected message)
    (3, "chr1\ttest\texon\t3\t10\t.\t+\t.", "line 4: 8 tab-separated column"),
    (3, _line("chr1", "exon", "3x", 10, "+", ".", TXA), "line 4: start '3x'"),
    (3, _line("chr1", "exon", 3, 1.5, "+", ".", TXA), "line 4: end '1.5'"),
    (3, _line("chr1", "exon", 12, 10, "+", ".", TXA), "line 4: start 12 > end"),
    (3, _line("chr1", "exon", 3, 10, "x", ".", TXA), "line 4: unknown strand"),
    (3, _line("chr1", "exon", 3, 10, ".", ".", TXA), "expected \\+ or -"),
    (3, _line("chr1", "exon", 3, 10, "+", ".", 'gene_id "gA";'), "line 4: exon without a"),
    (4, _line("chr1", "CDS", 7, 12, "+", "0", TXA), "line 5: CDS 7-12 of"),
    (4, _line("chr1", "CDS", 7, 10, "+", "5", TXA), "line 5: CDS phase '5'"),
    (5, _line("chr1", "exon", 5, 12, "+", ".", TXA), "line 6: exon 5-12 .*overl"),
    (5, _line("chr9", "exon", 16, 25, "+", ".", TXA), "line 6: transcript 'txA'"),
]


@pytest.mark.parametrize(("index", "text", "message"), GTF_ERRORS)
def test_annotation_errors(tmp_path, genome, index, text, message):
    gtf = _write(tmp_path / "bad.gtf", _replace(_gtf_lines(), index, text))
    out = tmp_path / "bad.tsv"
    with pytest.raises(InputError, match=message) as error:
        build_saluki_table(gtf, genome, out)
    assert str(gtf) in str(error.value) and "\n" not in str(error.value)
    assert not out.exists()


def test_gff3_exon_without_parent(tmp_path, genome):
    lines = _replace(_gff3_lines(), 4, _line("chr1", "exon", 16, 25, "+", ".", "ID=e2"))
    gff3 = _write(tmp_path / "bad.gff3", lines)
    with pytest.raises(InputError, match=r"bad.gff3 line 5: exon without .*Parent="):
        build_saluki_table(gff3, genome, tmp_path / "bad.tsv")


def test_cds_without_exons(tmp_path, genome):
    lines = [_line("chr1", "CDS", 7, 10, "+", "0", 'transcript_id "x";')]
    with pytest.raises(InputError, match="line 1: transcript 'x' has CDS"):
        build_saluki_table(_write(tmp_path / "c.gtf", lines), genome, tmp_path / "c.tsv")


def test_contig_missing_from_genome(tmp_path, gtf):
    genome = tmp_path / "chr1_only.fa"
    genome.write_text(f">1\n{CHR1}\n")
    with pytest.raises(InputError) as error:
        build_saluki_table(gtf, genome, tmp_path / "x.tsv")
    message = str(error.value)
    assert f"{gtf} line 4: transcript 'txA' is on contig 'chr1'" in message
    assert str(genome) in message and "the genome has '1'" in message
    assert not (tmp_path / "x.tsv").exists()


def test_exon_beyond_contig_end(tmp_path, gtf):
    genome = tmp_path / "short.fa"
    genome.write_text(f">chr1\n{CHR1[:38]}\n>chr2\n{CHR2}\n")
    with pytest.raises(InputError, match=r"annotation.gtf line 9: exon 31-40 of transcript 'txA'"):
        build_saluki_table(gtf, genome, tmp_path / "x.tsv")


def test_requested_ids_not_found(tmp_path, genome):
    lines = [_line("chr1", "exon", 3, 10, "+", ".", 'transcript_id "ENST1.4";')]
    gtf = _write(tmp_path / "v.gtf", lines)
    with pytest.raises(InputError, match=r"1 requested transcript id.*'ENST1' -> 'ENST1.4'"):
        build_saluki_table(gtf, genome, tmp_path / "x.tsv", transcripts=["ENST1"])
    assert not (tmp_path / "x.tsv").exists()


def test_missing_files_and_empty_annotation(tmp_path, genome, gtf):
    with pytest.raises(InputError, match="file not found"):
        build_saluki_table(tmp_path / "none.gtf", genome, tmp_path / "x.tsv")
    with pytest.raises(InputError, match="file not found"):
        build_saluki_table(gtf, tmp_path / "none.fa", tmp_path / "x.tsv")
    empty = _write(tmp_path / "empty.gtf", ["# nothing", _line("chr1", "gene", 1, 5, "+", ".", "")])
    with pytest.raises(InputError, match="no exon lines found"):
        build_saluki_table(empty, genome, tmp_path / "x.tsv")
    with pytest.raises(InputError, match="blocksize"):
        build_saluki_table(gtf, genome, tmp_path / "x.tsv", blocksize=0)


def test_corrupt_twobit(tmp_path, gtf):
    bad = tmp_path / "bad.2bit"
    bad.write_bytes(b"\x43\x27\x41\x1a" + b"\x00" * 8)
    with pytest.raises(InputError, match="bad.2bit: cannot be read as a 2bit genome"):
        build_saluki_table(gtf, bad, tmp_path / "x.tsv")
