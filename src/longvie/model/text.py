"""Caption encoders behind one interface: ``encode(captions) -> (B, max_tokens, text_dim)``.

Production uses the UMT5 encoder of the Wan folder (frozen). The CPU profiles cannot download
it, so they build a word vocabulary from the training captions and train a small transformer
encoder with the model; both save and load with ``save_pretrained`` / ``from_pretrained``.
Padding positions are zero, as the Wan pipeline zero-pads UMT5 states after the caption.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from longvie.errors import LongvieError

PAD, UNK = "[pad]", "[unk]"
WORD = re.compile(r"[a-z0-9]+")


class TextEncoder(Protocol):
    max_tokens: int

    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        """(B, max_tokens, text_dim); positions after a caption's last token are zero."""
        ...


def words(caption: str) -> list[str]:
    return WORD.findall(caption.lower())


class CaptionVocabulary:
    """Word-level vocabulary of the training captions (id 0 = padding, 1 = unknown word)."""

    def __init__(self, tokens: Sequence[str]) -> None:
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError("a vocabulary starts with the padding and unknown tokens")
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> CaptionVocabulary:
        """Most frequent words first, ties alphabetical: the same captions give the same ids."""
        counts = Counter(word for caption in captions for word in words(caption))
        kept = sorted((w for w, c in counts.items() if c >= min_count),
                      key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, captions: Sequence[str], max_tokens: int) -> torch.Tensor:
        """(B, max_tokens) int64, truncated or padded with 0."""
        out = torch.zeros(len(captions), max_tokens, dtype=torch.long)
        for row, caption in enumerate(captions):
            encoded = [self.index.get(w, 1) for w in words(caption)][:max_tokens]
            out[row, : len(encoded)] = torch.tensor(encoded, dtype=torch.long)
        return out


class CaptionEncoder(nn.Module):
    """Token + position embeddings and a small pre-norm transformer encoder."""

    def __init__(self, vocab_size: int, width: int, max_tokens: int, layers: int, heads: int):
        super().__init__()
        self.config = {"vocab_size": vocab_size, "width": width, "max_tokens": max_tokens,
                       "layers": layers, "heads": heads}
        self.tokens = nn.Embedding(vocab_size, width, padding_idx=0)
        self.positions = nn.Parameter(torch.randn(1, max_tokens, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        padding = ids == 0
        hidden = self.tokens(ids) + self.positions[:, : ids.shape[1]]
        # A caption with no known word would be all padding: let it attend to its first slot.
        safe = padding.clone()
        safe[:, 0] = False
        hidden = self.norm(self.encoder(hidden, src_key_padding_mask=safe))
        return hidden.masked_fill(padding.unsqueeze(-1), 0.0)


class CaptionTextEncoder(nn.Module):
    """The trained-with-the-model encoder: vocabulary + :class:`CaptionEncoder`."""

    def __init__(self, vocabulary: CaptionVocabulary, width: int, max_tokens: int,
                 layers: int, heads: int) -> None:
        super().__init__()
        self.vocabulary = vocabulary
        self.max_tokens = max_tokens
        self.network = CaptionEncoder(len(vocabulary), width, max_tokens, layers, heads)

    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        ids = self.vocabulary.ids(captions, self.max_tokens).to(self.network.positions.device)
        return self.network(ids)

    def save_pretrained(self, directory: str | Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.network.config, indent=2) + "\n")
        (folder / "vocab.json").write_text(json.dumps(self.vocabulary.tokens) + "\n")
        state = {k: v.contiguous() for k, v in self.network.state_dict().items()}
        save_file(state, folder / "model.safetensors")
        return folder

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> CaptionTextEncoder:
        from safetensors.torch import load_file

        folder = Path(directory)
        needed = [folder / name for name in ("config.json", "vocab.json", "model.safetensors")]
        if missing := [str(p) for p in needed if not p.is_file()]:
            raise LongvieError(f"caption encoder folder {folder} lacks {missing}")
        config = json.loads(needed[0].read_text())
        vocabulary = CaptionVocabulary(json.loads(needed[1].read_text()))
        encoder = cls(vocabulary, config["width"], config["max_tokens"], config["layers"],
                      config["heads"])
        encoder.network.load_state_dict(load_file(needed[2]))
        return encoder.eval()


class UMT5TextEncoder(nn.Module):
    """The production encoder: tokenizer + UMT5 encoder of a Wan folder, frozen."""

    def __init__(self, pretrained: str, max_tokens: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        from transformers import AutoTokenizer, UMT5EncoderModel

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(pretrained, subfolder="tokenizer")
            self.model = UMT5EncoderModel.from_pretrained(
                pretrained, subfolder="text_encoder", torch_dtype=dtype
            )
        except (OSError, ValueError) as error:
            raise LongvieError(
                f"model.pretrained={pretrained!r}: cannot load tokenizer/ + text_encoder/ "
                f"({error})"
            ) from error
        self.model.requires_grad_(False).eval()
        self.max_tokens = max_tokens

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(captions), padding="max_length", truncation=True,
                                max_length=self.max_tokens, return_tensors="pt")
        device = next(self.model.parameters()).device
        mask = tokens.attention_mask.to(device)
        hidden = self.model(tokens.input_ids.to(device), attention_mask=mask).last_hidden_state
        return hidden * mask.unsqueeze(-1).to(hidden.dtype)
