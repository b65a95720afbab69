# ruff: noqa: E402  (imports follow the sys.path fix below)
"""Benchmark: the encoder alone on LoCoMo's turns, the ceiling of memory writes (issue 14).

all-MiniLM-L6-v2 on ONNX Runtime (memory.embed, the graph exported from the installed weights
into `--models`), fp32 and int8, on 1 and 2 threads, at a few batch sizes: sentences/s (wall)
and the process's CPU per sentence, the solid figure on a shared machine. Texts: every turn of
the LoCoMo development half as the memory bench writes it ("<speaker>: <text>", 2,760 turns),
each embedded once, no cache. Also the cosine of each int8 vector to its fp32 one.

    .venv/bin/python bench/embed_ceiling.py --data ../shared/data/locomo-dev --models DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent)] + [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import argparse
import json
import os
import time

import numpy as np

from memory.embed import load_onnx_minilm


def turn_texts(data: Path) -> list[str]:
    """Every turn of the conversations, as bench/memory_locomo.py's signals hold it."""
    texts = []
    for record in json.loads((data / "locomo-dev.json").read_text()):
        conversation = record["conversation"]
        number = 1
        while f"session_{number}" in conversation:
            for turn in conversation[f"session_{number}"]:
                text = f"{turn['speaker']}: {turn['text']}"
                if turn.get("blip_caption"):
                    text += f" [shares a photo of {turn['blip_caption']}]"
                texts.append(text)
            number += 1
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the locomo-dev directory")
    parser.add_argument("--models", type=Path, required=True, help="where the graphs are cached")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batches", default="16,64")
    args = parser.parse_args()
    texts = turn_texts(args.data)
    vectors = {}
    for variant in ("fp32", "int8"):
        for threads in (int(t) for t in args.threads.split(",")):
            for batch in (int(b) for b in args.batches.split(",")):
                model = load_onnx_minilm(
                    args.models, variant=variant, threads=threads, batch_size=batch
                )
                model.embed(texts[:64])
                load = os.getloadavg()[0]
                cpu, wall = time.process_time(), time.perf_counter()
                vectors[variant] = model.embed(texts)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                row = {
                    "variant": variant,
                    "threads": threads,
                    "batch": batch,
                    "sentences_per_s": round(len(texts) / wall, 1),
                    "cpu_ms_per_sentence": round(1000 * cpu / len(texts), 2),
                    "load": [round(load, 1), round(os.getloadavg()[0], 1)],
                }
                print(json.dumps(row), flush=True)
    cosine = (vectors["fp32"] * vectors["int8"]).sum(axis=1)
    print(
        json.dumps(
            {
                "texts": len(texts),
                "int8_vs_fp32_cosine": {
                    "mean": round(float(cosine.mean()), 4),
                    "p1": round(float(np.percentile(cosine, 1)), 4),
                    "min": round(float(cosine.min()), 4),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
