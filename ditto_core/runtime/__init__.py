"""The runtime: loaded models, the stages on them, and the two modes that share one path.

* :class:`DittoModels` (:mod:`.models`): every network, once; shared, never changed by its users.
* Settings (:mod:`.options`): :class:`SourceOptions`, :class:`SamplingOptions`, :class:`RenderOptions`, composed
  into one :class:`JobOptions`; :class:`StreamingOptions`; the release's :class:`ReleaseDefaults`.
* Stages (:mod:`.stages`): :func:`extract_source`, :func:`track_motion`, :func:`extract_audio_features`,
  :func:`sample_motion`.
* Driving video (:mod:`.driving`): :func:`extract_driving_motion` -> a 25 fps motion from any face video.
* Preview (:mod:`.preview`): :func:`preview_motion`, a motion drawn as keypoints on the source crop (no renderer).
* Keypoints (:mod:`.keypoints`): :class:`KeypointPlanner`, incremental, for a whole clip or one hop.
* Frames (:mod:`.frames`): :class:`FrameRenderer` (renderer + compositor) and :func:`render_frames`.
* Offline (:mod:`.offline`): :func:`generate`, :func:`render_video` (motion -> an mp4, in flat memory). Streaming (:mod:`.stream`): :class:`StreamingSession`,
  :func:`stream_to_file`.
"""

from .driving import DRIVING_MODES, DrivingOptions, extract_driving_motion
from .frames import FrameRenderer, render_frames
from .keypoints import KeypointPlanner, Keypoints
from .models import DEVICES, EYE_BACKENDS, DittoModels, resolve_device
from .offline import generate, generate_driven, render_video
from .preview import preview_motion
from .options import (
    STREAM_OUTPUTS,
    JobOptions,
    ReleaseDefaults,
    RenderOptions,
    SamplingOptions,
    SourceOptions,
    StreamingOptions,
)
from .stages import (
    AudioFeatures,
    extract_audio_features,
    extract_source,
    motion_conditions,
    sample_motion,
    source_motion_vector,
    track_motion,
)
from .stream import (
    StreamCancelled,
    StreamFrame,
    StreamingSession,
    StreamRecord,
    StreamStats,
    format_stats,
    stream_to_file,
)

__all__ = [
    "DEVICES", "DRIVING_MODES", "DrivingOptions", "EYE_BACKENDS", "STREAM_OUTPUTS", "AudioFeatures", "DittoModels", "FrameRenderer", "JobOptions",
    "KeypointPlanner", "Keypoints", "ReleaseDefaults", "RenderOptions", "SamplingOptions", "SourceOptions",
    "StreamCancelled", "StreamFrame", "StreamRecord", "StreamStats", "StreamingOptions", "StreamingSession",
    "extract_audio_features", "extract_driving_motion", "extract_source", "format_stats", "generate", "generate_driven", "motion_conditions", "preview_motion", "render_frames",
    "render_video", "resolve_device", "sample_motion", "source_motion_vector", "stream_to_file", "track_motion",
]
