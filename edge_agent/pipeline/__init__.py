"""The per-frame stages, in the order a frame meets them (``frame_pipeline.FramePipeline``):

``privacy_mask`` -> ``motion`` (the gate) -> ``alpr`` (detector + OCR) -> ``tracking`` (one plate per
vehicle) -> ``dedup`` (repeats suppressed) -> ``events`` (transit records, alerts, unread passes; the
context image from ``context_image``). Frames come from ``edge_agent.sources``; events leave through
``edge_agent.link``.
"""
