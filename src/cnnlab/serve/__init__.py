"""``cnnlab serve``: a local web app over one trained run. One self-contained page (choose or drop an
image, see the top classes and a Grad-CAM overlay) and a JSON API (``POST /predict``, ``GET /health``,
``GET /model``, OpenAPI at ``/docs``), with limits on what a request may send.

- ``predictor``: the model, loaded once, answering from many threads.
- ``limits``: the request body limit (an ASGI middleware).
- ``app``: the FastAPI application.
"""
