"""The runtime: loaded models, the stages on them, and the two modes that share one path.

* :class:`DittoModels` (:mod:`.models`): every network, once; shared, never changed by its users.
* Settings (:mod:`.options`): :class:`SourceOptions`, :class:`SamplingOptions`, :class:`RenderOptions`, composed
  into one :class:`JobOptions`; :class:`StreamingOptions`; the release's :class:`ReleaseDefaults`.
* Stages (:mod:`.stages`): :func:`extract_source`, :func:`track_motion`, :func:`extract_audio_features`,
  :func:`sample_motion`.
* Keypoints (:mod:`.keypoints`): :class:`KeypointPlanner`, incremental, for a whole clip or one hop.
* Frames (:mod:`.frames`): :class:`FrameRenderer` (renderer + compositor) and :func:`render_frames`.
* Offline (:mod:`.offline`): :func:`generate`, :func:`render_video` (motion -> an mp4, in flat memory). Streaming (:mod:`.stream`): :class:`StreamingSession`,
  :func:`stream_to_file`.
"""

from .frames import FrameRenderer, render_frames
from .keypoints import KeypointPlanner, Keypoints
from .models import DEVICES, EYE_BACKENDS, DittoModels, resolve_device
from .offline import generate, render_video
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
    "DEVICES", "EYE_BACKENDS", "STREAM_OUTPUTS", "AudioFeatures", "DittoModels", "FrameRenderer", "JobOptions",
    "KeypointPlanner", "Keypoints", "ReleaseDefaults", "RenderOptions", "SamplingOptions", "SourceOptions",
    "StreamCancelled", "StreamFrame", "StreamRecord", "StreamStats", "StreamingOptions", "StreamingSession",
    "extract_audio_features", "extract_source", "format_stats", "generate", "motion_conditions", "render_frames",
    "render_video", "resolve_device", "sample_motion", "source_motion_vector", "stream_to_file", "track_motion",
]
