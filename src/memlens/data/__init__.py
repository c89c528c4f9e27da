"""Datasets shipped with installed packages, and membership masks."""
from .datasets import DATASETS, Dataset, from_arrays, load_dataset
from .masks import make_masks

__all__ = ["DATASETS", "Dataset", "from_arrays", "load_dataset", "make_masks"]
from .canaries import CANARY_KINDS, CanarySet, make_canaries, with_canaries

__all__ += ["CANARY_KINDS", "CanarySet", "make_canaries", "with_canaries"]
from .text import BOS, EOS, VOCAB_SIZE, decode_tokens, encode_texts

__all__ += ["BOS", "EOS", "VOCAB_SIZE", "decode_tokens", "encode_texts"]
from .text import TextDataset, load_text_dataset, text_dataset_from_texts

__all__ += ["TextDataset", "load_text_dataset", "text_dataset_from_texts"]
from .text_canaries import CanaryFormat, TextCanarySet, insert_text_canaries, make_text_canaries

__all__ += ["CanaryFormat", "TextCanarySet", "insert_text_canaries", "make_text_canaries"]
