"""The FastAPI application: the page, the JSON API and its limits.

Every refused request gets a 4xx with ``{"detail": "<what is wrong: how to fix it>"}``; the model
runs in a worker thread (``run_in_threadpool``), so the event loop keeps accepting requests while it
works.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from cnnlab import __version__
from cnnlab.data.files import ImageTooLarge, NotAnImage
from cnnlab.serve.limits import BodyLimit
from cnnlab.serve.predictor import Predictor, UnknownClass

# Browsers label image files image/<type>; some clients send files as application/octet-stream.
ACCEPTED_TYPES = ("image/", "application/octet-stream")


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 10 * 2**20
    max_pixels: int = 40_000_000  # judged from the image header, before decoding


class TopClass(BaseModel):
    class_: str = Field(alias="class")
    probability: float


class GradCam(BaseModel):
    class_: str = Field(alias="class")
    layer: str
    overlay: str  # data:image/png;base64,... at the model's input size


class Prediction(BaseModel):
    top: list[TopClass]
    gradcam: GradCam
    image: str  # the image as the model saw it (resized), data:image/png;base64,...


class ModelDescription(BaseModel):
    model: str
    classes: list[str]
    image_size: int
    epoch: int
    checkpoint: str
    gradcam_layer: str
    max_batch: int
    run: str
    config: dict[str, Any]
    tta: str  # test-time augmentation of the probabilities: none, flip or flip+scales
    ensemble: list[str]  # the runs whose probabilities are averaged, the explained one first
    limits: dict[str, int]


class Problem(BaseModel):
    detail: str


PROBLEMS: dict[int | str, dict[str, Any]] = {
    413: {"model": Problem, "description": "body or image too large"},
    415: {"model": Problem, "description": "not an image content type"},
    422: {"model": Problem, "description": "not a readable image, a missing field, or an unknown class"},
}


def page_html() -> str:
    return resources.files("cnnlab.serve").joinpath("page.html").read_text(encoding="utf-8")


def create_app(predictor: Predictor, limits: Limits = Limits()) -> FastAPI:
    app = FastAPI(title="cnnlab serve", version=__version__,
                  description=f"Predictions with Grad-CAM from the run '{predictor.run.run_dir.name}' "
                              f"({predictor.run.config.model}).")
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    page = page_html()

    @app.exception_handler(RequestValidationError)
    async def readable_validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
        return JSONResponse({"detail": f"{problems} (send the image as the multipart form field 'file')"}, 422)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return page

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", response_model=ModelDescription)
    def model() -> dict[str, Any]:
        return {**predictor.describe(), "limits": {"max_body_bytes": limits.max_body_bytes,
                                                   "max_pixels": limits.max_pixels}}

    @app.post("/predict", response_model=Prediction, responses=PROBLEMS)
    async def predict(
        file: Annotated[UploadFile, File(description="an image file: JPEG, PNG, BMP, GIF, TIFF, WebP ...")],
        top_k: Annotated[int, Form(ge=1, le=100, description="how many classes to return")] = 5,
        cam_class: Annotated[str | None, Form(description="class whose Grad-CAM to draw (default: the top one)")] = None,
    ) -> dict[str, Any]:
        content_type = file.content_type or ""
        if not content_type.startswith(ACCEPTED_TYPES):
            raise HTTPException(415, f"content type '{content_type}' is not an image: send image/jpeg, image/png "
                                     "or another image/* file")
        data = await file.read()
        try:
            return await run_in_threadpool(predictor.predict, data, limits.max_pixels, top_k, cam_class or None)
        except ImageTooLarge as e:
            raise HTTPException(413, str(e)) from None
        except (NotAnImage, UnknownClass) as e:
            raise HTTPException(422, str(e)) from None

    return app
