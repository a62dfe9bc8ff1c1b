# SPDX-License-Identifier: Apache-2.0
"""Clip requests from agencies: validation (request.py), signed manifest (manifest.py), resumable
upload (upload.py) and the ``cmd/clip`` service tying them to the recorder and audit log (service.py)."""
