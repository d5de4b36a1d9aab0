"""Shared by the face analyzers (face_detection, facial_details, emotion_detection, age_estimation).

- ``detect``: mediapipe's bundled full-range face detector (``FaceFinder``) and square face crops;
- ``tracks``: linking the faces of sampled frames into face tracks (greedy IoU / centre distance);
- ``mesh``: FaceMesh landmarks on face crops and what they say (mouth and eye opening, head pose);
- ``classify``: the base of the two transformers image classifiers applied to face crops.

(A private package: the analyzers package's auto-registration skips names that start with ``_``.)
"""
