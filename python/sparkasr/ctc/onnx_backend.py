"""Run an exported CTC model (``model.onnx``: input_values [+ attention_mask] -> logits) on ONNX
Runtime. This is what executors use: no torch, no transformers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np


class OnnxCTCBackend:
    """``backend(input_values [B,T] float32, attention_mask [B,T] | None) -> logits [B,F,V] float32``."""

    name = "onnx"

    def __init__(
        self,
        model_path: Union[str, os.PathLike],
        num_threads: Optional[int] = None,
        providers: Optional[Sequence[str]] = None,
    ):
        import onnxruntime as ort

        self.model_path = Path(model_path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            opts.intra_op_num_threads = int(num_threads)
            opts.inter_op_num_threads = 1
        available = ort.get_available_providers()
        chosen = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.model_path), sess_options=opts, providers=chosen)
        self.input_names = [i.name for i in self.session.get_inputs()]
        if "input_values" not in self.input_names:
            raise ValueError(f"{model_path}: ONNX model has no 'input_values' input ({self.input_names})")
        self.has_attention_mask = "attention_mask" in self.input_names
        self._mask_dtype = np.int64
        for i in self.session.get_inputs():
            if i.name == "attention_mask" and "int32" in i.type:
                self._mask_dtype = np.int32
        self.output_name = self.session.get_outputs()[0].name

    def __call__(self, input_values: np.ndarray, attention_mask: Optional[np.ndarray] = None) -> np.ndarray:
        feeds = {"input_values": np.ascontiguousarray(input_values, dtype=np.float32)}
        if self.has_attention_mask:
            if attention_mask is None:
                attention_mask = np.ones(input_values.shape, dtype=self._mask_dtype)
            feeds["attention_mask"] = np.ascontiguousarray(attention_mask, dtype=self._mask_dtype)
        (logits,) = self.session.run([self.output_name], feeds)
        return np.asarray(logits, dtype=np.float32)


class TransformersCTCBackend:
    """Optional backend: the safetensors checkpoint on transformers/torch (driver-side checks,
    parity tests, or users who want no conversion step). Imports torch lazily."""

    name = "transformers"

    def __init__(
        self, checkpoint_dir: Union[str, os.PathLike], allow_pickle: bool = False, num_threads: Optional[int] = None
    ):
        import torch
        from transformers import AutoModelForCTC

        from .checkpoint import weights_file

        weights = weights_file(checkpoint_dir, allow_pickle=allow_pickle)
        if num_threads:
            torch.set_num_threads(int(num_threads))
        self._torch = torch
        self.model = AutoModelForCTC.from_pretrained(
            str(checkpoint_dir),
            use_safetensors=weights.suffix != ".bin" and not weights.name.endswith(".bin.index.json"),
        )
        self.model.eval()
        self.has_attention_mask = True  # the torch model accepts it; the engine decides whether to pass it

    def __call__(self, input_values: np.ndarray, attention_mask: Optional[np.ndarray] = None) -> np.ndarray:
        torch = self._torch
        kwargs = {}
        if attention_mask is not None:
            kwargs["attention_mask"] = torch.from_numpy(np.asarray(attention_mask, dtype=np.int64))
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(input_values, dtype=np.float32)), **kwargs)
        return out.logits.float().numpy()
