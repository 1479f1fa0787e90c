"""The video data layer: decoding, samplers, transforms, dataset formats, manifest, the built-in
``skim-digits`` benchmark, the frame bank and cached features. See docs/data.md.

PyAV is imported first on purpose: decord bundles its own FFmpeg libraries and, when loaded before
PyAV in the same process, breaks PyAV's libvpx encoder.
"""
import av  # noqa: F401
