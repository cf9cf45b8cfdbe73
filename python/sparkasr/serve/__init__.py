"""Serving: ``sparkasr serve`` (the Hugging Face Inference API for automatic-speech-recognition,
on FastAPI + uvicorn, with dynamic batching) and ``sparkasr demo`` (a Gradio microphone demo),
both thin layers over the same engines and option dataclasses as the Spark stages.

* :mod:`.protocol`: the Inference API's request and parameters, read into option values;
* :mod:`.service`: model resolution, the background load, the batching worker, the result cache;
* :mod:`.scheduling`: the long requests' lane and the turns it takes with the short ones;
* :mod:`.app`: the FastAPI app (routes, headers, errors);
* :mod:`.connections`: read deadlines and a connection cap for uvicorn;
* :mod:`.demo`: the Gradio app (full-context and streaming);
* :mod:`.cli`: the two commands' flags and entry points.

Needs the ``serve`` extra (``pip install 'sparkasr[serve]'``) for :mod:`.app` and :mod:`.demo`;
the rest is plain Python.
"""
