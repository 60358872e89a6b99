"""Token encodings: nuc and k-mer tokenizers behind one :class:`Tokenizer` protocol.

Special ids are shared by every encoding: MASK=0, CLS=1, SEP=2, PAD=3, UNK=4; content
tokens start at 5. A tokenizer's JSON spec (``to_spec`` / ``save_tokenizer``) is all that is
needed to rebuild it (``tokenizer_from_spec`` / ``load_tokenizer``).
"""

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
from nucflow.tokenize.kmer import KEEP_POLICIES, KmerTokenizer

__all__ = [
    "CLS_ID",
    "FIRST_CONTENT_ID",
    "KEEP_POLICIES",
    "MASK_ID",
    "PAD_ID",
    "SEP_ID",
    "SPECIAL_TOKENS",
    "TOKENIZER_METHODS",
    "UNK_ID",
    "KmerTokenizer",
    "Tokenizer",
    "build_tokenizer",
    "load_tokenizer",
    "save_tokenizer",
    "special_ids",
    "tokenizer_from_spec",
]
