"""Serving: ``sparkasr serve`` (the Hugging Face Inference API for automatic-speech-recognition and
OpenAI's audio API, on FastAPI + uvicorn, with dynamic batching and async jobs) and ``sparkasr
demo`` (a Gradio microphone demo), both thin layers over the same engines and option dataclasses
as the Spark stages.

* :mod:`.protocol`: the Inference API's request and parameters, read into option values;
* :mod:`.service`: model resolution, the background load, the batching worker, the result cache;
* :mod:`.scheduling`: the long requests' lane and the turns it takes with the short ones;
* :mod:`.app`: the FastAPI app (routes, headers, errors) and the gateway every route shares;
* :mod:`.openai_protocol`, :mod:`.openai_api`: OpenAI's audio API (``/v1``) on the same gateway;
* :mod:`.jobs`, :mod:`.jobs_api`: async jobs for long audio, kept under ``--jobs-dir``;
* :mod:`.connections`: read deadlines and a connection cap for uvicorn;
* :mod:`.demo`: the Gradio app (full-context and streaming);
* :mod:`.cli`: the two commands' flags and entry points.

Needs the ``serve`` extra (``pip install 'sparkasr[serve]'``) for :mod:`.app` and :mod:`.demo`;
the rest is plain Python.
"""
