"""Shared code of the model-backed vision analyzers (object_detection, product_detection,
body_pose, text_overlay, background_segmentation, content_quality, composition_analysis,
eye_tracking).

A private package: the analyzers package's auto-registration skips names that start with ``_``.
Importing it (or any module in it) loads no model and imports no heavy library; each helper
imports ultralytics, open_clip, transformers, mediapipe or the OCR engine inside the function
that needs it.

- ``common``: devices and precisions, per-shot grouping, event spans from sampled times, the
  compact base64 float16 embedding format.
- ``yolo``: ultralytics YOLO loading, batched letterbox/forward/NMS, ByteTrack/BoT-SORT tracking;
  ``yolo_base``: the device-step base class of the three YOLO analyzers.
- ``clip``: the open_clip model cache shared by content_quality and composition_analysis;
  ``clip_base``: their device-step base class (CLIP embeddings plus grey-frame measures).
- ``quality``: model-free sharpness, noise and exposure measures.
- ``ocr``: the rapidocr and EasyOCR backends and the merging of OCR lines into text events.
- ``face``: mediapipe face detection + FaceMesh with iris, and the gaze geometry.
- ``mediapipe_base``: the device-step base class of the mediapipe frame analyzers (face_detection,
  facial_details, eye_tracking, hand_gesture, audio_visual_sync), the check of the bundled
  mediapipe models and the quiet closing of mediapipe graphs.
"""
