"""Face geometry and the auxiliary face models used for source registration.

* :mod:`.crop`: the 2-point similarity crop (``crop_transform``, ``crop_image``) and the loader's ``check_resize``
* :mod:`.paste`: the feathered ``paste_mask`` and ``paste_back`` of a 512 render into the frame
* :mod:`.detect`: SCRFD face detection (``FaceDetector``), ``nms`` and ``select_face``
* :mod:`.landmarks`: insightface 106 and LivePortrait 203 landmarks
* :mod:`.eyes`: BlazeFace + FaceMesh 478 points and the ``eye_features`` (eye_open, eye_ball)

:class:`FaceModels` bundles the ONNX models a registration needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .crop import check_resize, crop_image, crop_transform, transform_points
from .detect import (
    DEFAULT_MIN_FACE_SIZE,
    DetectorConfig,
    FaceDetector,
    FaceTooSmallError,
    NoFaceError,
    nms,
    select_face,
)
from .eyes import BlazeFace, FaceMesh, MeshLandmarker, TaskLandmarker, eye_features
from .landmarks import Landmark106, Landmark203
from .paste import paste_back, paste_mask

__all__ = [
    "FaceModels",
    "check_resize",
    "crop_image",
    "crop_transform",
    "transform_points",
    "paste_mask",
    "paste_back",
    "FaceDetector",
    "DetectorConfig",
    "NoFaceError",
    "FaceTooSmallError",
    "DEFAULT_MIN_FACE_SIZE",
    "nms",
    "select_face",
    "Landmark106",
    "Landmark203",
    "BlazeFace",
    "FaceMesh",
    "MeshLandmarker",
    "TaskLandmarker",
    "eye_features",
]

PathLike = str | os.PathLike[str]


@dataclass
class FaceModels:
    """The auxiliary face models of a source registration (onnxruntime sessions, or mediapipe for ``lmk478``)."""

    detector: FaceDetector  #: SCRFD (det_10g.onnx / insightface_det.onnx)
    lmk106: Landmark106  #: 2d106det.onnx / landmark106.onnx
    lmk203: Landmark203  #: landmark203.onnx (either release variant)
    lmk478: MeshLandmarker | TaskLandmarker  #: blaze_face.onnx + face_mesh.onnx, or face_landmarker.task

    @classmethod
    def from_paths(
        cls,
        detector: PathLike,
        landmark106: PathLike,
        landmark203: PathLike,
        blaze_face: PathLike | None = None,
        face_mesh: PathLike | None = None,
        face_landmarker_task: PathLike | None = None,
        device: Any = "cpu",
        detector_config: DetectorConfig | None = None,
    ) -> "FaceModels":
        """Open every model on ``device`` (an onnxruntime device string such as ``"cpu"`` or ``"cuda:0"``).

        The 478-point path is BlazeFace + FaceMesh when both ONNX paths are given (the default, and what the golden
        data uses); otherwise ``face_landmarker_task`` through mediapipe (optional, untested).
        """
        if blaze_face is not None and face_mesh is not None:
            lmk478: MeshLandmarker | TaskLandmarker = MeshLandmarker(blaze_face, face_mesh, device)
        elif face_landmarker_task is not None:
            lmk478 = TaskLandmarker(face_landmarker_task)
        else:
            raise ValueError(
                "FaceModels.from_paths: the eye features need blaze_face and face_mesh (ONNX) "
                "or face_landmarker_task (mediapipe); none was given"
            )
        return cls(
            detector=FaceDetector(detector, device, detector_config),
            lmk106=Landmark106(landmark106, device),
            lmk203=Landmark203(landmark203, device),
            lmk478=lmk478,
        )
