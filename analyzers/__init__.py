"""Built-in analyzers, one module each, registered through the same ``register_analyzers``
hook a third-party plugin uses.

Each is registered by name as a ``framework.Deferred``: its module is imported the first time the
host is asked for its class, so a run that selects a few analyzers (``--only cut_analysis``)
imports those and their dependencies, not all of them. ``BUILTIN`` lists them, in module order;
a test checks it against the ``Analyzer`` subclasses the package's modules define, so a new
module that is not listed fails the suite. Importing an analyzer module loads no model and does
no I/O: heavy imports belong in ``Analyzer.load``.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

from framework import Analyzer, Deferred, hookimpl

# analyzer name -> "module:Class"
BUILTIN: dict[str, str] = {
    "age_estimation": "analyzers.age_estimation:AgeEstimation",
    "audio_analysis": "analyzers.audio_analysis:AudioAnalysis",
    "audio_environment": "analyzers.audio_environment:AudioEnvironment",
    "audio_visual_sync": "analyzers.audio_visual_sync:AudioVisualSync",
    "background_segmentation": "analyzers.background_segmentation:BackgroundSegmentation",
    "blip2_video_analyzer": "analyzers.blip2_video_analyzer:Blip2VideoAnalyzer",
    "body_language": "analyzers.body_language:BodyLanguage",
    "body_pose": "analyzers.body_pose:BodyPose",
    "camera_analysis": "analyzers.camera_analysis:CameraAnalysis",
    "color_analysis": "analyzers.color_analysis:ColorAnalysis",
    "comment_cta_detection": "analyzers.comment_cta_detection:CommentCtaDetection",
    "composition_analysis": "analyzers.composition_analysis:CompositionAnalysis",
    "content_quality": "analyzers.content_quality:ContentQuality",
    "cut_analysis": "analyzers.cut_analysis:CutAnalysis",
    "depth_estimation": "analyzers.depth_estimation:DepthEstimation",
    "emotion_detection": "analyzers.emotion_detection:EmotionDetection",
    "eye_tracking": "analyzers.eye_tracking:EyeTracking",
    "face_detection": "analyzers.face_detection:FaceDetection",
    "facial_details": "analyzers.facial_details:FacialDetails",
    "fusion": "analyzers.fusion:Fusion",
    "gesture_recognition": "analyzers.gesture_recognition:GestureRecognition",
    "hand_gesture": "analyzers.hand_gesture:HandGesture",
    "object_detection": "analyzers.object_detection:ObjectDetection",
    "product_detection": "analyzers.product_detection:ProductDetection",
    "scene_segmentation": "analyzers.scene_segmentation:SceneSegmentation",
    "sound_effects": "analyzers.sound_effects:SoundEffects",
    "speech_emotion": "analyzers.speech_emotion:SpeechEmotion",
    "speech_flow": "analyzers.speech_flow:SpeechFlow",
    "speech_rate": "analyzers.speech_rate:SpeechRate",
    "speech_transcription": "analyzers.speech_transcription:SpeechTranscription",
    "streaming_dense_captioning": "analyzers.streaming_dense_captioning:StreamingDenseCaptioning",
    "temporal_consistency": "analyzers.temporal_consistency:TemporalConsistency",
    "temporal_flow": "analyzers.temporal_flow:TemporalFlow",
    "text_overlay": "analyzers.text_overlay:TextOverlay",
    "video_llava": "analyzers.video_llava:VideoLlavaAnalyzer",
    "visual_effects": "analyzers.visual_effects:VisualEffects",
    "qwen2_vl_temporal": "analyzers.vlm.analyzer:SceneDescription",
    "voice_activity": "analyzers.voice_activity:VoiceActivity",
}


def analyzer_classes() -> list[type[Analyzer]]:
    """The built-in analyzer classes, in module order (imports every analyzer module)."""
    return [Deferred(name, target).load() for name, target in BUILTIN.items()]


def scan_analyzer_classes() -> list[type[Analyzer]]:
    """The ``Analyzer`` subclasses (with a ``name``) that this package's modules define, found by
    importing each: what ``BUILTIN`` must list."""
    found: list[type[Analyzer]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Analyzer) and obj is not Analyzer and obj.__module__.startswith(module.__name__) and obj.name:
                found.append(obj)
    return found


@hookimpl
def register_analyzers(register):
    for name, target in BUILTIN.items():
        register(Deferred(name, target))
