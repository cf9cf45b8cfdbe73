"""``sparkasr convert`` and what it needs: CTC checkpoints to ONNX (:mod:`.command`), Whisper as ONNX
graphs for the JVM (:mod:`.whisper_onnx`) and Whisper on PyTorch (:mod:`.torch_whisper`, also a GPU
backend). torch lives here only: nothing on the transcription path imports this package."""
