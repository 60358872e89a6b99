"""Encodings: nuc, k-mer, BPE and atomic tokenizers and CSE nucleotide codes, one protocol.

Special ids are shared by the nuc, k-mer and BPE encodings: MASK=0, CLS=1, SEP=2, PAD=3,
UNK=4; content tokens start at 5 (the atomic encoding uses PAD=0, UNK=1, atoms from 2).
A tokenizer's JSON spec (``to_spec`` / ``save_tokenizer``) is all that is needed to rebuild
it (``tokenizer_from_spec`` / ``load_tokenizer``).
"""

from nucflow.tokenize.atomic import (
    ATOMIC_PAD_ID,
    ATOMIC_UNK_ID,
    AtomicTokenizer,
    learn_atomic,
    one_hot_atoms,
)
from nucflow.tokenize.base import (
    CLS_ID,
    FIRST_CONTENT_ID,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_TOKENS,
    TOKENIZER_METHODS,
    UNK_ID,
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
    save_tokenizer,
    special_ids,
    tokenizer_from_spec,
)
from nucflow.tokenize.bpe import BpeTokenizer, learn_bpe
from nucflow.tokenize.cse import CSE_N_CODE, CSE_PAD_CODE, CseEncoding, one_hot_codes
from nucflow.tokenize.kmer import KEEP_POLICIES, KmerTokenizer

__all__ = [
    "ATOMIC_PAD_ID",
    "ATOMIC_UNK_ID",
    "CLS_ID",
    "CSE_N_CODE",
    "CSE_PAD_CODE",
    "FIRST_CONTENT_ID",
    "KEEP_POLICIES",
    "MASK_ID",
    "PAD_ID",
    "SEP_ID",
    "SPECIAL_TOKENS",
    "TOKENIZER_METHODS",
    "UNK_ID",
    "AtomicTokenizer",
    "BpeTokenizer",
    "CseEncoding",
    "KmerTokenizer",
    "Tokenizer",
    "build_tokenizer",
    "learn_atomic",
    "learn_bpe",
    "load_tokenizer",
    "one_hot_atoms",
    "one_hot_codes",
    "save_tokenizer",
    "special_ids",
    "tokenizer_from_spec",
]
